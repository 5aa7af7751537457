"""benchmarks/_st_cache.py: sentence-transformers' mine_hard_negatives reads the corpus embeddings negmine cached
(its file name recipe checked against the installed sentence-transformers), with and without a prompt name."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def st_cache(benchmark_script):
    return benchmark_script("_st_cache")


@pytest.mark.parametrize("prompt_name", [None, "document"])
def test_mine_hard_negatives_loads_the_seeded_corpus(st_cache, tmp_path, minilm_path, prompt_name):
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    from negmine.encoders import EmbeddingCache, load_encoder

    encoder = load_encoder(str(minilm_path), corpus_prompt="passage: " if prompt_name else None)
    model = encoder.model
    if prompt_name:
        model.prompts = {**model.prompts, "document": "passage: "}
    corpus = [f"document {i} about topic {i % 3} and some words" for i in range(12)]
    queries, positives = ["topic 1 words", "topic 2 words"], [corpus[1], corpus[5]]
    seed = st_cache.seed_st_cache(tmp_path / "st", encoder, corpus, positives, cache=EmbeddingCache(tmp_path / "c"),
                                  prompt_name=prompt_name)
    seeded = np.load(seed)
    kwargs = {"corpus_prompt_name": prompt_name} if prompt_name else {}
    mined = mine_hard_negatives(Dataset.from_dict({"query": queries, "positive": positives}), model, corpus=corpus,
                                range_max=6, num_negatives=2, sampling_strategy="top", output_format="n-tuple",
                                cache_folder=str(tmp_path / "st"), verbose=False, **kwargs)
    assert st_cache.loaded_from_seed(seed)  # no corpus file of its own appeared beside the seed
    assert len(mined) > 0
    # the seeded vectors are what sentence-transformers itself computes for that corpus and prompt
    own = model.encode_document(st_cache.st_corpus(corpus, positives), normalize_embeddings=True,
                                prompt_name=prompt_name, convert_to_numpy=True)
    assert np.allclose(own, seeded, atol=1e-5)


def test_a_different_corpus_is_not_loaded(st_cache, tmp_path, minilm_path):
    from negmine.encoders import EmbeddingCache, load_encoder

    encoder = load_encoder(str(minilm_path))
    seed = st_cache.seed_st_cache(tmp_path, encoder, ["a b", "c d"], ["c d"], cache=EmbeddingCache(tmp_path / "c"))
    (tmp_path / "corpus_embeddings_other.npy").write_bytes(b"")  # what sentence-transformers writes on a miss
    assert not st_cache.loaded_from_seed(seed)
