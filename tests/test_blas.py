"""negmine._blas: faiss-cpu's bundled OpenBLAS gets the CPU's kernel family (it falls back to SSE3 kernels on CPUs
newer than itself), for that one import only; a value the user set wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from negmine._blas import cpu_flags, kernel_family

PROBE = """
import json, os
import numpy
from negmine._optional import require
require("faiss")
from negmine._blas import faiss_blas_core, kernel_family
print(json.dumps({"env_after": os.environ.get("OPENBLAS_CORETYPE"), "core": faiss_blas_core(),
                  "family": kernel_family()}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kernel_family_follows_the_cpu_flags():
    avx512 = frozenset("fma avx2 avx512f avx512bw avx512vl avx512dq avx512cd".split())
    assert kernel_family(avx512, "x86_64") == "SkylakeX"
    assert kernel_family(avx512 - {"avx512vl"}, "x86_64") == "Haswell"  # not the whole AVX-512 set SkylakeX uses
    assert kernel_family(frozenset({"avx2", "fma", "sse4_2"}), "x86_64") == "Haswell"
    assert kernel_family(frozenset({"avx", "sse4_2"}), "x86_64") is None  # OpenBLAS's own choice stands
    assert kernel_family(avx512, "aarch64") is None
    assert cpu_flags("processor\t: 0\nflags\t\t: fpu avx2 fma\nbugs\t\t: x\n") == {"fpu", "avx2", "fma"}
    assert cpu_flags("no flags here") == frozenset()


def test_faiss_gets_the_family_for_its_import_only():
    result = probe()
    if result["core"] is None:
        pytest.skip("this faiss links no bundled OpenBLAS")
    assert result["env_after"] is None  # nothing else (numpy loaded before, children) sees the variable
    if result["family"] is not None:
        assert result["core"] == result["family"]


def test_a_coretype_the_user_set_is_left_alone():
    result = probe(OPENBLAS_CORETYPE="Prescott")
    if result["core"] is None:
        pytest.skip("this faiss links no bundled OpenBLAS")
    assert result["core"] == "Prescott" and result["env_after"] == "Prescott"
