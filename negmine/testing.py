"""Offline fixtures for tests and documentation examples: a toy BEIR-style dataset."""

from __future__ import annotations

from negmine.data import RetrievalData

_DOCS = {
    "d1": ("Hard negatives", "Hard negative mining selects passages that look relevant but are not."),
    "d2": ("FAISS", "FAISS is a library for efficient similarity search of dense vectors."),
    "d3": ("Contrastive learning", "InfoNCE contrasts a positive against many negatives with a temperature."),
    "d4": ("", "Sourdough bread needs flour, water, salt and a starter."),
    "d5": ("", "A recipe for tomato soup with basil and garlic."),
    "d6": ("Dense retrieval", "Dense retrievers embed queries and passages into one vector space."),
    "d7": ("False negatives", "Unlabeled relevant passages mined as negatives are false negatives."),
    "d8": ("", "The marathon runner trained for months before the race."),
    "d9": ("Cross-encoders", "A cross-encoder scores a query and a passage jointly and reranks candidates."),
    "d10": ("Hard negatives", "Hard negative mining selects passages that look relevant but are not."),  # copy of d1
    "d11": ("BM25", "BM25 is a lexical ranking function based on term frequencies."),
    "d12": ("", "Mountain hiking trails with scenic views over the valley."),
}
_QUERIES = {
    "q1": "what is hard negative mining",
    "q2": "library for similarity search of vectors",
    "q3": "contrastive loss with negatives and temperature",
    "q4": "how to bake bread",
    "q5": "what are false negatives in retrieval training",
    "q6": "dense retrieval of passages",
}
_QRELS = {
    "q1": {"d1": 1},
    "q2": {"d2": 1},
    "q3": {"d3": 1},
    "q4": {"d4": 1},
    "q5": {"d7": 1, "d1": 1},
    "q6": {"d6": 1},
}


def toy_data() -> RetrievalData:
    """12 documents (one an exact copy of another), 6 queries, one with two positives."""
    corpus = {d: {"title": t, "text": x} for d, (t, x) in _DOCS.items()}
    return RetrievalData(corpus, dict(_QUERIES), {q: dict(r) for q, r in _QRELS.items()}, name="toy", split="train")


def tiny_cross_encoder(folder, seed: int = 0):
    """A randomly initialised 2-layer BERT cross-encoder with a word-level tokenizer, built offline in ~1 s.

    Its scores are meaningless but deterministic: it exercises the real ``CrossEncoder`` code path in tests.
    """
    import json
    from pathlib import Path

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = Path(folder)
    words = sorted({w for _, (t, x) in _DOCS.items() for w in f"{t} {x}".lower().split()}
                   | {w for q in _QUERIES.values() for w in q.lower().split()})
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    (folder / "negmine_tiny.json").write_text(json.dumps({"seed": seed}))
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(folder), max_length=128)


def importorskip(name: str, reason: str | None = None):
    """``pytest.importorskip`` for a test module's optional dependency, except where every extra is expected.

    A module-level ``pytest.importorskip`` makes a whole test file vanish from a run where the package is missing,
    silently. Under CI (``CI`` set, as GitHub Actions does) or with ``NEGMINE_REQUIRE_OPTIONAL=1`` the import is
    required and a missing package fails the run; on a developer machine it still skips.
    """
    import importlib
    import os

    import pytest

    strict = os.environ.get("NEGMINE_REQUIRE_OPTIONAL", "").lower() in ("1", "true", "yes") or bool(
        os.environ.get("CI"))
    if strict:
        try:
            return importlib.import_module(name)
        except ImportError as err:
            pytest.fail(f"{name} is required here (CI / NEGMINE_REQUIRE_OPTIONAL) but cannot be imported: {err}",
                        pytrace=False)
    return pytest.importorskip(name, reason=reason)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (for test servers and clusters)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TableEncoder:
    """An encoder that serves precomputed unit vectors keyed by text, so tests control every score."""

    similarity = "cosine"

    def __init__(self, table):
        self.table = table

    def encode_queries(self, texts, *, batch_size=32, show_progress_bar=False):
        import numpy as np

        return np.stack([self.table[t] for t in texts])

    encode_corpus = encode_queries

    def fingerprint(self):
        return {"encoder": "table", "id": id(self)}
