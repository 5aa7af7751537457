import numpy as np
import pytest

from negmine.encoders import EmbeddingCache, HashingEncoder, encode_with_cache


class Interrupt(Exception):
    pass


def test_cache_returns_rows_in_caller_order_and_reuses(tmp_path):
    enc = HashingEncoder(dim=16)
    texts = ["short", "a much longer text than the others", "mid length text", "x"]
    cache = EmbeddingCache(tmp_path, block_size=2)
    first = encode_with_cache(enc, texts, "document", cache=cache, show_progress_bar=False)
    np.testing.assert_array_equal(first, enc.encode_corpus(texts))
    calls = enc.encode_calls
    again = encode_with_cache(enc, texts, "document", cache=cache, show_progress_bar=False)
    np.testing.assert_array_equal(again, first)
    assert enc.encode_calls == calls and cache.hits == 1


def test_interrupted_encode_resumes_where_it_stopped(tmp_path):
    enc = HashingEncoder(dim=8)
    texts = [f"text number {i} " * (i % 5 + 1) for i in range(10)]
    cache = EmbeddingCache(tmp_path, block_size=3)
    seen = []

    def failing(batch):
        seen.append(len(batch))
        if len(seen) == 3:
            raise Interrupt
        return enc.encode_corpus(batch)

    with pytest.raises(Interrupt):
        cache.get_or_encode(texts, failing, enc.fingerprint(), "document")
    assert seen == [3, 3, 3]  # the third block failed after two were written
    resumed = []

    def counting(batch):
        resumed.append(len(batch))
        return enc.encode_corpus(batch)

    out = cache.get_or_encode(texts, counting, enc.fingerprint(), "document")
    assert resumed == [3, 1]  # only the two missing blocks
    np.testing.assert_array_equal(out, enc.encode_corpus(texts))
    assert not list(cache.folder(next(iter([p.name for p in tmp_path.glob("*/*")]))).glob("block_*"))


def test_key_depends_on_fingerprint_kind_and_texts(tmp_path):
    cache = EmbeddingCache(tmp_path)
    a, b = HashingEncoder(dim=8, seed=0), HashingEncoder(dim=8, seed=1)
    encode_with_cache(a, ["t"], "document", cache=cache, show_progress_bar=False)
    encode_with_cache(b, ["t"], "document", cache=cache, show_progress_bar=False)
    encode_with_cache(a, ["t"], "query", cache=cache, show_progress_bar=False)
    encode_with_cache(a, ["t", "u"], "document", cache=cache, show_progress_bar=False)
    assert cache.hits == 0 and len(list(tmp_path.glob("*/*/embeddings.npy"))) == 4


def test_bad_kind_rejected(tmp_path):
    with pytest.raises(ValueError, match="kind must be"):
        encode_with_cache(HashingEncoder(), ["t"], "passage", cache=EmbeddingCache(tmp_path))


def test_weights_hash_changes_with_weights_not_name(minilm_encoder):
    from negmine.encoders.st import weights_hash

    model = minilm_encoder.model
    before = weights_hash(model)
    param = next(model.parameters())
    import torch

    with torch.no_grad():
        param[0, 0] += 1.0
        after = weights_hash(model)
        param[0, 0] -= 1.0
    assert before != after and weights_hash(model) == before


def test_fingerprint_of_a_model_folder_is_memoized_without_loading(minilm_path, tmp_path, monkeypatch):
    from negmine.encoders import load_encoder

    monkeypatch.setenv("NEGMINE_CACHE", str(tmp_path))
    first = load_encoder(str(minilm_path)).fingerprint()  # loads the model, hashes its weights
    fresh = load_encoder(str(minilm_path))
    assert fresh.fingerprint() == first and fresh._model is None  # memo hit: the model was never loaded
    other = load_encoder(str(minilm_path), query_prompt="query: ")
    assert other.fingerprint()["query_prompt"] == "query: " and other.fingerprint() != first
