"""Evaluation: pytrec_eval metrics, BEIR folders, a sentence-transformers evaluator, paired significance tests and
MTEB runs/submissions.

Names are resolved lazily (PEP 562): ``import negmine.evaluation`` imports neither torch nor mteb;
:class:`BEIREvaluator` pulls in sentence-transformers and the ``mteb`` helpers pull in mteb only when used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate": "negmine.evaluation.metrics",
    "evaluate_per_query": "negmine.evaluation.metrics",
    "format_table": "negmine.evaluation.metrics",
    "DEFAULT_K_VALUES": "negmine.evaluation.metrics",
    "paired_test": "negmine.evaluation.significance",
    "compare_runs": "negmine.evaluation.significance",
    "PairedTestResult": "negmine.evaluation.significance",
    "evaluate_beir": "negmine.evaluation.beir",
    "retrieve": "negmine.evaluation.beir",
    "load_metrics": "negmine.evaluation.beir",
    "subsample": "negmine.evaluation.beir",
    "EvaluationResult": "negmine.evaluation.beir",
    "BEIREvaluator": "negmine.evaluation.beir",
    "evaluate_mteb": "negmine.evaluation.mteb",
    "local_task": "negmine.evaluation.mteb",
    "make_model_meta": "negmine.evaluation.mteb",
    "export_submission": "negmine.evaluation.mteb",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'negmine.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
