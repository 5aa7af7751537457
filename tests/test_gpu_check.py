"""benchmarks/gpu_check.sh --dry-run: the GPU check's every step on the CPU with tiny sizes (no GPU needed)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_dry_run_writes_the_report_with_every_step(tmp_path, minilm_path, scifact_dir):
    env = {
        **os.environ,
        "GPU_CHECK_OUT": str(tmp_path),
        "PYTHON": "python",
        "NEGMINE_DATA": str(scifact_dir.parent),
        "PYTHONPATH": str(REPO),
    }
    env.pop("NEGMINE_MODELS", None)  # the bundled MiniLM
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["errors"] == {}
    assert report["environment"]["mode"] == "cpu (dry run)"
    assert report["pytest"]["ran"] and report["pytest"]["failures"] == 0 and report["pytest"]["skipped"] >= 3
    assert report["encoding"]["docs_per_s"] > 0 and report["encoding"]["docs"] == 32
    (run,) = report["search"]["runs"]
    assert run["recall_at_k_vs_fp32_oracle"] == 1.0 and run["gflops"] > 0
    assert report["large_k"]["k"] > 2048 and report["large_k"]["prefix_equals_top_k_search"]
    assert report["large_k"]["recall_vs_fp32_oracle"] == 1.0
    assert report["multi_gpu"]["ids_equal_one_device"] is True
    md = (tmp_path / "gpu_check.md").read_text()
    assert "Command: `bash benchmarks/gpu_check.sh --dry-run`" in md and "CPU dry run" in md


def test_junit_summary_and_nominal_peaks(tmp_path):
    gpu_check = load_benchmark("gpu_check")
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite tests="4" failures="1" errors="0" skipped="1">'
        '<testcase classname="a" name="ok"/><testcase classname="a" name="bad"><failure/></testcase>'
        "</testsuite></testsuites>"
    )
    summary = gpu_check.pytest_summary(str(junit), 1)
    assert (summary["passed"], summary["failures"], summary["skipped"]) == (2, 1, 1)
    assert summary["failed_tests"] == ["a::bad"]
    assert not gpu_check.pytest_summary(str(tmp_path / "missing.xml"), None)["ran"]
    assert gpu_check.nominal_peak("NVIDIA H100 80GB HBM3") == 989.4
    assert gpu_check.nominal_peak("NVIDIA H100 PCIe") == 756.0
    assert gpu_check.nominal_peak("NVIDIA H200") == 989.4
    assert gpu_check.nominal_peak("Some GPU") is None


def test_refuses_to_run_without_cuda_unless_cpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    gpu_check = load_benchmark("gpu_check")
    with pytest.raises(SystemExit, match="no CUDA"):
        gpu_check.run(gpu_check.parse_args(["--out-dir", str(Path("unused"))]))
