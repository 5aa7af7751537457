"""The one model resolver (preset -> local folder -> hub id) behind --retriever, --model and the judges."""

from __future__ import annotations

import pytest

from negmine.encoders.presets import PRESETS, check_model_folder, looks_like_path, resolve_model
from negmine.errors import ConfigError, ModelNotFoundError, NegmineError


def test_a_preset_resolves_to_its_pinned_revision_or_a_local_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("NEGMINE_MODELS", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("NEGMINE_OFFLINE", raising=False)
    resolved = resolve_model("bge")
    assert resolved.kind == "preset" and resolved.preset is PRESETS["bge"]
    assert (resolved.location, resolved.revision) in {(PRESETS["bge"].model, PRESETS["bge"].revision)}
    folder = tmp_path / "bge-base-en-v1.5"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("NEGMINE_MODELS", str(tmp_path))
    local = resolve_model("bge")
    assert (local.location, local.revision, local.kind) == (str(folder), None, "preset")


def test_a_model_folder_and_a_hub_id(tmp_path):
    (tmp_path / "modules.json").write_text("[]")
    assert resolve_model(str(tmp_path)).location == str(tmp_path)
    assert resolve_model(str(tmp_path)).kind == "folder"
    hub = resolve_model("BAAI/bge-small-en-v1.5")
    assert (hub.location, hub.kind) == ("BAAI/bge-small-en-v1.5", "hub")


@pytest.mark.parametrize("name,message", [
    ("/no/such/dir", "--model /no/such/dir: model folder does not exist"),
    ("./no/such/dir", "model folder does not exist"),
    ("~/no-such-negmine-model", "model folder does not exist"),
    ("a/b/c", "model folder does not exist"),  # two slashes: a path, not a hub id
])
def test_a_path_that_does_not_exist(name, message):
    with pytest.raises(ModelNotFoundError, match=message) as info:
        resolve_model(name, option="--model")
    assert "\n" not in str(info.value)


def test_a_folder_that_is_not_a_model_and_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelNotFoundError, match="is a folder but not a model: it holds none of modules.json"):
        resolve_model(str(tmp_path), option="--retriever")
    with pytest.raises(ModelNotFoundError, match="is a file; pass the model folder"):
        resolve_model(str(tmp_path / "notes.txt"))


def test_empty_and_unknown_names():
    with pytest.raises(ConfigError, match="--model is empty"):
        resolve_model("  ")
    with pytest.raises(ConfigError, match="--retriever: unknown retriever preset 'minilmm'. Did you mean 'minilm'"):
        resolve_model("minilmm", option="--retriever")


def test_looks_like_path():
    assert looks_like_path("/x") and looks_like_path("./x") and looks_like_path("~/x") and looks_like_path("a/b/c")
    assert not looks_like_path("BAAI/bge-base-en-v1.5") and not looks_like_path("minilm")


def test_check_model_folder_accepts_each_marker(tmp_path):
    for marker in ("modules.json", "config.json", "config_sentence_transformers.json", "adapter_config.json"):
        folder = tmp_path / marker.replace(".", "_")
        folder.mkdir()
        (folder / marker).write_text("{}")
        assert check_model_folder(folder) == folder


def test_every_consumer_uses_the_resolver(tmp_path):
    """load_encoder (--retriever), training.load_model (--model), evaluation (--model) and the judges
    (cross-encoder:PATH, llm:PATH) all refuse a non-model folder with the same one-line error."""
    from negmine.encoders import load_encoder
    from negmine.evaluation.beir import resolve_encoder
    from negmine.relabel.factory import load_judge
    from negmine.training import load_model

    (tmp_path / "readme.md").write_text("not a model")
    calls = {
        "--retriever": lambda: load_encoder(str(tmp_path)),
        "--model": lambda: resolve_encoder(str(tmp_path)),
        "--model ": lambda: load_model(str(tmp_path)),
        "cross-encoder judge": lambda: load_judge(f"cross-encoder:{tmp_path}"),
        "llm judge": lambda: load_judge(f"llm:{tmp_path}"),
    }
    for option, call in calls.items():
        with pytest.raises(NegmineError, match="is a folder but not a model") as info:
            call()
        assert str(info.value).startswith(f"{option.strip()} {tmp_path}"), str(info.value)


def test_llm_judge_paths(tmp_path):
    from negmine.relabel.factory import resolve_llm_target

    with pytest.raises(ModelNotFoundError, match="llm judge /no/such.gguf: no such GGUF file"):
        resolve_llm_target("/no/such.gguf")
    with pytest.raises(ModelNotFoundError, match="model folder does not exist"):
        resolve_llm_target("/no/such/dir")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_llm_target(str(tmp_path / "m.gguf")) == ("gguf", str(tmp_path / "m.gguf"))
    assert resolve_llm_target(str(tmp_path)) == ("transformers", str(tmp_path))  # a folder holding one .gguf
    assert resolve_llm_target("Qwen/Qwen2.5-1.5B-Instruct") == ("transformers", "Qwen/Qwen2.5-1.5B-Instruct")


def test_a_folder_with_broken_weights_is_one_line(tmp_path):
    """A folder that looks like a model but does not load: one line naming the option, not a traceback."""
    pytest.importorskip("sentence_transformers")
    from negmine.training import load_model

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match=r"--model .*: could not load the model") as info:
        load_model(str(tmp_path))
    assert "\n" not in str(info.value)
