"""faiss-cpu's bundled OpenBLAS on CPUs newer than it.

The faiss-cpu wheels on PyPI (1.15.1) bundle OpenBLAS 0.3.15 (2021) built with ``DYNAMIC_ARCH``: when it loads, it
picks its kernels by CPU model, and a model it does not know gets its most generic x86-64 kernels ("Prescott", SSE3).
Recent Xeons (this machine's, CPU model 207, is one) are such models: there FAISS's exact search (its BLAS path) ran
2.75-7.33x slower than it can (``benchmarks/results/search_scaling.md``, d = 384: 15-24% of the core's fp32 matmul
rate with the Prescott kernels over 10,000 to 1,000,000 vectors, 92-103% with the SkylakeX ones over 100,000 to
5,000,000), while numpy's newer OpenBLAS ran at full speed beside it.

OpenBLAS reads ``OPENBLAS_CORETYPE`` once, when the library loads. :func:`import_faiss` (what
:func:`negmine._optional.require` does for ``faiss``) sets it for that one import to the kernel family the CPU's
flags allow (``SkylakeX`` with AVX-512 F/BW/VL/DQ/CD, ``Haswell`` with AVX2 + FMA) and removes it again, so no other
library or child process sees it. A value the user set is left alone (``OPENBLAS_CORETYPE=Prescott`` restores the
old behaviour); nothing changes off Linux x86-64 or where faiss was already imported.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path
from types import ModuleType

ENV = "OPENBLAS_CORETYPE"
_AVX512 = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"})
_AVX2 = frozenset({"avx2", "fma"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The flags of the first CPU in ``/proc/cpuinfo`` (``flags`` on x86, ``Features`` on ARM; empty where there is
    none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def kernel_family(flags: frozenset[str] | None = None, machine: str | None = None) -> str | None:
    """The OpenBLAS kernel family a CPU with ``flags`` runs (``None``: not x86-64, or no AVX2)."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return None
    flags = cpu_flags() if flags is None else flags
    if _AVX512 <= flags:
        return "SkylakeX"
    if _AVX2 <= flags:
        return "Haswell"
    return None


def import_faiss() -> ModuleType:
    """``import faiss`` with its bundled OpenBLAS told the CPU's kernel family (module docstring)."""
    if "faiss" in sys.modules:
        return sys.modules["faiss"]
    family = None if ENV in os.environ or not sys.platform.startswith("linux") else kernel_family()
    if family is not None:
        os.environ[ENV] = family
    try:
        import faiss
    finally:
        if family is not None:
            os.environ.pop(ENV, None)
    return faiss


def faiss_blas_core() -> str | None:
    """The kernel family of the OpenBLAS bundled with faiss-cpu, as it reports it (``None``: faiss links another
    BLAS, or none was found)."""
    faiss = import_faiss()
    libs = Path(faiss.__file__).resolve().parent.parent / "faiss_cpu.libs"
    for path in sorted(libs.glob("libopenblas*.so*")) if libs.is_dir() else []:
        try:
            lib = ctypes.CDLL(str(path))  # already loaded by faiss: this returns the same handle
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return None
