"""negmine: mine hard negatives with FAISS, filter false negatives with LLM judges, train embedders with contrastive
losses, and evaluate them on BEIR/MTEB.

``import negmine`` is cheap: torch, faiss and sentence-transformers are imported only when a function needs them.
"""

from __future__ import annotations

from negmine._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it (resolved lazily, PEP 562)
_EXPORTS = {
    "load_data": "negmine.data",
    "load_beir": "negmine.data",
    "RetrievalData": "negmine.data",
    "MinedRecord": "negmine.data",
    "read_mined": "negmine.data",
    "DataError": "negmine.errors",
    "ConfigError": "negmine.errors",
    "load_encoder": "negmine.encoders",
    "HashingEncoder": "negmine.encoders",
    "EmbeddingCache": "negmine.encoders",
    "PRESETS": "negmine.encoders",
    "ExactIndex": "negmine.index",
    "FaissIndex": "negmine.index",
    "Retriever": "negmine.retrieve",
    "Candidates": "negmine.retrieve",
    "mine_hard_negatives": "negmine.mining",
    "MineConfig": "negmine.mining",
    "TrainConfig": "negmine.training",
    "train": "negmine.training",
}

__all__ = ["__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
