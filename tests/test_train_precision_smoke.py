"""benchmarks/train_precision.py on a tiny real batch: both precisions timed on interleaved repeats, the bf16
gradient close to but not equal to fp32's, the report and its twin written."""

from __future__ import annotations

import json


def test_train_precision_tiny_run_writes_its_report(benchmark_script, scifact_dir, tmp_path):
    script = benchmark_script("train_precision")
    out = tmp_path / "train_precision.md"
    data = script.main(["--data", str(scifact_dir), "--batch-size", "4", "--num-negatives", "2",
                        "--max-seq-length", "32", "--repeats", "2", "--warmup", "0", "--out", str(out)])
    assert data["texts_per_row"] == 4 and all(len(v) == 2 for v in data["raw_step_seconds"].values())
    assert data["speedup"]["median"] > 0 and data["loss"]["fp32"] > 0
    assert 0.9 < data["gradient_cosine"] < 1.0  # bf16 rounds the passes: close, never identical
    assert abs(data["loss"]["bf16"] - data["loss"]["fp32"]) < 0.05 * data["loss"]["fp32"]
    text = out.read_text()
    assert "Speed-up of bf16" in text and "Command:" in text
    assert json.loads(out.with_suffix(".json").read_text())["data"]["gradient_cosine"] == data["gradient_cosine"]
