import pytest

from negmine.encoders import PRESETS, load_encoder
from negmine.encoders.presets import get_preset, resolve_model_location
from negmine.errors import ConfigError, ModelNotFoundError


def test_presets_are_complete_records():
    assert {"bge", "bge-small", "e5", "gte", "minilm", "mpnet", "embeddinggemma"} <= set(PRESETS)
    for preset in PRESETS.values():
        assert "/" in preset.model and len(preset.revision) == 40
    assert PRESETS["bge"].query_prompt.startswith("Represent this sentence")
    assert (PRESETS["e5"].query_prompt, PRESETS["e5"].corpus_prompt) == ("query: ", "passage: ")


def test_unknown_name_suggests_a_preset():
    with pytest.raises(ConfigError, match="Did you mean 'bge-small'"):
        get_preset("bge-smal")
    with pytest.raises(ConfigError, match="Did you mean 'mpnet'"):
        load_encoder("mpnett")


def test_minilm_resolves_to_bundled_package(minilm_path, monkeypatch):
    monkeypatch.delenv("NEGMINE_MODELS", raising=False)  # a models folder holding MiniLM would be found first
    location, revision = resolve_model_location(PRESETS["minilm"])
    assert location == str(minilm_path) and revision is None


def test_offline_preset_without_weights_explains_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("NEGMINE_MODELS", raising=False)
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_location(PRESETS["bge"])
    message = str(info.value)
    assert "$NEGMINE_MODELS/bge-base-en-v1.5" in message and "--model-path" in message


def test_negmine_models_and_model_path(monkeypatch, tmp_path, minilm_path):
    (tmp_path / "bge-base-en-v1.5").mkdir()
    monkeypatch.setenv("NEGMINE_MODELS", str(tmp_path))
    assert resolve_model_location(PRESETS["bge"])[0] == str(tmp_path / "bge-base-en-v1.5")
    enc = load_encoder("bge", model_path=minilm_path)  # preset prompts on local weights
    assert enc.query_prompt == PRESETS["bge"].query_prompt and enc.name == "bge"
    with pytest.raises(ModelNotFoundError, match="is not a folder"):
        resolve_model_location(PRESETS["bge"], tmp_path / "missing")


def test_minilm_encoder_is_real(minilm_encoder):
    emb = minilm_encoder.encode_queries(["hard negatives", "hard negative mining", "a recipe for tomato soup"])
    assert emb.shape == (3, 384) and abs(float((emb[0] ** 2).sum()) - 1) < 1e-5
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.3
    fp = minilm_encoder.fingerprint()
    assert fp["max_seq_length"] == 256 and len(fp["weights_sha256"]) == 64
