"""GPU search: run for real where FAISS sees a GPU (``pytest -m gpu``); elsewhere only the no-GPU behaviour runs."""

from __future__ import annotations

import numpy as np
import pytest

from negmine.testing import importorskip

faiss = importorskip("faiss")

from negmine.index.gpu import GPU_MAX_K, GpuFaissIndex, gpu_count, require_faiss_gpu  # noqa: E402

HAS_GPU = gpu_count() > 0


def test_module_imports_and_reports_no_gpu_cleanly():
    expected = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
    assert gpu_count() == expected and isinstance(gpu_count(), int)
    if not hasattr(faiss, "StandardGpuResources"):
        assert gpu_count() == 0
        with pytest.raises(ImportError, match=r"negmine\[gpu\]"):
            require_faiss_gpu("test")


def test_bad_large_k_policy_is_rejected_before_touching_a_gpu():
    from negmine.index.ann import AnnIndex

    with pytest.raises(ValueError, match="large_k"):
        GpuFaissIndex(AnnIndex(8, "Flat"), large_k="truncate")


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, rng.standard_normal((50, 64)).astype(np.float32)


def cpu_flat(x):
    from negmine.index.ann import AnnIndex

    index = AnnIndex(x.shape[1], "Flat")
    index.add(x)
    return index


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="FAISS sees no GPU (or faiss-cpu is installed)")
@pytest.mark.parametrize("use_float16", [False, True])
def test_gpu_flat_matches_cpu(vectors, use_float16):
    x, q = vectors
    cpu = cpu_flat(x)
    gpu = GpuFaissIndex(cpu, devices=0, use_float16=use_float16)
    (cs, ci), (gs, gi) = cpu.search(q, 100), gpu.search(q, 100)
    if use_float16:  # fp16 storage: scores rounded, near-ties may swap
        assert np.mean([len(set(a) & set(b)) / 100 for a, b in zip(ci, gi)]) >= 0.98
        np.testing.assert_allclose(gs, cs, atol=2e-2)
    else:
        assert (ci == gi).mean() >= 0.999
        np.testing.assert_allclose(gs, cs, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="FAISS sees no GPU")
def test_large_k_falls_back_to_cpu_with_a_warning_or_raises(vectors):
    x, q = vectors
    cpu = cpu_flat(x)
    gpu = GpuFaissIndex(cpu, devices=0)
    with pytest.warns(RuntimeWarning, match="2048"):
        scores, ids = gpu.search(q[:3], GPU_MAX_K + 1)
    np.testing.assert_array_equal(ids, cpu.search(q[:3], GPU_MAX_K + 1)[1])
    with pytest.raises(ValueError, match="GPU limit"):
        GpuFaissIndex(cpu, devices=0, large_k="error").search(q[:3], GPU_MAX_K + 1)


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("shard", [True, False])
def test_multi_gpu_shard_and_replicate(vectors, shard):
    x, q = vectors
    cpu = cpu_flat(x)
    gpu = GpuFaissIndex(cpu, devices=[0, 1], shard=shard)
    assert (gpu.search(q, 50)[1] == cpu.search(q, 50)[1]).mean() >= 0.999


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="FAISS sees no GPU")
def test_gpu_ivf_and_add_refresh(vectors):
    from negmine.index.ann import AnnIndex, recall_at_k

    x, q = vectors
    cpu = AnnIndex(64, "IVF64,Flat", nprobe=64)
    cpu.add(x[:10_000])
    gpu = GpuFaissIndex(cpu, devices=0)
    gpu.add(x[10_000:])
    assert gpu.ntotal == 20_000
    assert recall_at_k(gpu, x, q, 20) >= 0.99
