"""Session fixtures of the evaluation tests: each real corpus is evaluated (and encoded, through the shared
embedding cache) once per session; later tests and the MTEB run read the cached embeddings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def scifact_minilm(scifact_dir: Path):
    """all-MiniLM-L6-v2 on SciFact test through ``evaluate_beir`` (the published MTEB figure is 0.6451)."""
    from negmine.evaluation.beir import evaluate_beir

    started = time.perf_counter()
    result = evaluate_beir("minilm", scifact_dir, "test")
    result.config["fixture_seconds"] = round(time.perf_counter() - started, 1)
    return result


@pytest.fixture(scope="session")
def arguana_minilm(arguana_dir: Path):
    """all-MiniLM-L6-v2 on ArguAna test (MTEB: 0.5017); its qrels name 5 documents missing from the corpus."""
    from negmine.evaluation.beir import evaluate_beir

    started = time.perf_counter()
    result = evaluate_beir("minilm", arguana_dir, "test", unknown_qrels="keep")
    result.config["fixture_seconds"] = round(time.perf_counter() - started, 1)
    return result
