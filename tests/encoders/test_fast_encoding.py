"""int8 / bf16-autocast encoding: close to fp32, never mixed with fp32 in the cache, original model untouched."""

from __future__ import annotations

import numpy as np
import pytest

from negmine.testing import importorskip

importorskip("torch")

from negmine.encoders.cache import cache_key  # noqa: E402

TEXTS = ["Hard negative mining selects passages that look relevant but are not.",
         "FAISS is a library for efficient similarity search of dense vectors.",
         "Sourdough bread needs flour, water, salt and a starter.",
         "The marathon runner trained for months before the race."]


@pytest.fixture(scope="module")
def model(minilm_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path), device="cpu")


def make(model, precision):
    from negmine.encoders.st import SentenceTransformerEncoder

    return SentenceTransformerEncoder(model, precision=precision)


@pytest.mark.parametrize("precision,min_cos", [("int8", 0.95), ("int8-mixed", 0.97), ("bf16-autocast", 0.98)])
def test_fast_precisions_stay_close_to_fp32(model, precision, min_cos):
    ref = make(model, "fp32").encode_corpus(TEXTS)
    emb = make(model, precision).encode_corpus(TEXTS)
    assert emb.dtype == np.float32 and emb.shape == ref.shape
    cos = (emb * ref).sum(1)
    assert cos.min() >= min_cos, cos
    assert not np.array_equal(emb, ref)  # it really ran another arithmetic
    # the nearest document of each text is unchanged
    np.testing.assert_array_equal(np.argmax(emb @ ref.T, 1), np.arange(len(TEXTS)))


def test_int8_quantizes_a_copy_and_only_linear_layers(model):
    import torch

    from negmine.encoders.fast import quantize_int8

    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize_int8(model, "int8")
    kinds = {type(m).__name__ for m in q.modules()}
    assert any("Linear" in k and k != "Linear" for k in kinds)  # dynamic quantized Linear
    assert not any(isinstance(m, torch.nn.Linear) and type(m) is torch.nn.Linear for m in q.modules())
    mixed = quantize_int8(model, "int8-mixed")
    plain = [n for n, m in mixed.named_modules() if type(m) is torch.nn.Linear]
    assert plain and all(n.endswith("output.dense") and ".attention." not in n for n in plain)
    for k, v in model.state_dict().items():  # original untouched
        assert torch.equal(v, before[k])


def test_fingerprints_keep_precisions_apart(model):
    fps = {p: make(model, p).fingerprint() for p in ("fp32", "int8", "int8-mixed", "bf16-autocast")}
    assert len({fp["weights_sha256"] for fp in fps.values()}) == 1  # same model: same fp32 weights
    assert fps["int8"]["quantization"]["dtype"] == "qint8" and "quantization" not in fps["fp32"]
    keys = {cache_key(fp, "document", TEXTS) for fp in fps.values()}
    assert len(keys) == len(fps)


def test_fp32_fingerprint_is_unchanged_by_the_fast_options(model):
    fp = make(model, "fp32").fingerprint()
    assert set(fp) == {"encoder", "weights_sha256", "query_prompt", "corpus_prompt", "max_seq_length", "similarity",
                       "precision", "modules"}


def test_invalid_and_unsupported_precisions(model):
    from negmine.encoders.fast import prepare_model
    from negmine.encoders.st import SentenceTransformerEncoder

    with pytest.raises(ValueError, match="int4"):
        SentenceTransformerEncoder(model, precision="int4")

    class FakeCuda:
        device = type("D", (), {"type": "cuda"})()

    with pytest.raises(ValueError, match="CPU only"):
        prepare_model(FakeCuda(), "int8")
