"""Evaluation: pytrec_eval metrics, BEIR folders, a sentence-transformers evaluator, paired significance tests and
MTEB runs/submissions.

Names are resolved lazily (PEP 562): ``import negmine.evaluation`` imports neither torch nor mteb;
:class:`BEIREvaluator` pulls in sentence-transformers and the ``mteb`` helpers pull in mteb only when used.
"""

from __future__ import annotations

from negmine._lazy import lazy_exports

_EXPORTS = {
    "evaluate": "negmine.evaluation.metrics",
    "evaluate_per_query": "negmine.evaluation.metrics",
    "format_table": "negmine.evaluation.metrics",
    "DEFAULT_K_VALUES": "negmine.evaluation.metrics",
    "paired_test": "negmine.evaluation.significance",
    "compare_runs": "negmine.evaluation.significance",
    "PairedTestResult": "negmine.evaluation.significance",
    "seed_aware_test": "negmine.evaluation.significance",
    "SeedAwareResult": "negmine.evaluation.significance",
    "holm": "negmine.evaluation.significance",
    "holm_adjust": "negmine.evaluation.significance",
    "cluster_bootstrap_rate": "negmine.evaluation.significance",
    "evaluate_beir": "negmine.evaluation.beir",
    "retrieve": "negmine.evaluation.beir",
    "load_metrics": "negmine.evaluation.beir",
    "subsample": "negmine.evaluation.beir",
    "EvaluationResult": "negmine.evaluation.beir",
    "BEIREvaluator": "negmine.evaluation.evaluator",
    "evaluate_mteb": "negmine.evaluation.mteb",
    "local_task": "negmine.evaluation.mteb",
    "make_model_meta": "negmine.evaluation.mteb",
    "export_submission": "negmine.evaluation.submission",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
