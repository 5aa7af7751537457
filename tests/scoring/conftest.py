"""The SmolLM2 GGUF fixture of the relabel tests (found in $NEGMINE_MODELS or fetched; fails in CI when missing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_RELABEL_CONFTEST = Path(__file__).parents[1] / "relabel" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_relabel_conftest", _RELABEL_CONFTEST)
_relabel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_relabel)

smollm2_gguf = _relabel.smollm2_gguf


@pytest.fixture(scope="session")
def llama_cpp() -> None:
    """llama-cpp-python must be importable: a failure in CI, a skip elsewhere."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as err:
        _relabel._unavailable(f"llama-cpp-python is not importable ({err}); pip install 'llama-cpp-python'")
