"""benchmarks/mixing_probe.py on real SciFact batches mined with the bundled MiniLM (embeddings from the session's
shared cache): its losses agree with its own softmax, mixing adds negatives that take probability from the positive,
and with no mixes it reduces to InfoNCE."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from negmine.cli import app


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("mixing_probe")


@pytest.fixture(scope="module")
def mined(tmp_path_factory, scifact_dir):
    out = tmp_path_factory.mktemp("mixing-probe")
    result = CliRunner().invoke(app, ["mine", "--retriever", "minilm", "--data", str(scifact_dir), "--split", "train",
                                      "--num-negatives", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "mined.jsonl"


def run(script, mined, scifact_dir, *settings):
    argv = ["--mined", str(mined), "--data", str(scifact_dir), "--out", "-", "--batch-size", "16"]
    return script.main(argv + [a for setting in settings for a in ("--setting", setting)])


def test_mixing_takes_probability_from_the_positive(script, mined, scifact_dir):
    recipe, no_query_mixes = run(script, mined, scifact_dir, "N=16,s=16,sq=4,t=0.05", "sq=0")
    # the loss is the mean of -log p(positive) over rows: the loss and the probe's own softmax agree
    assert recipe["loss_infonce"] == pytest.approx(recipe["mean_neg_log_p_infonce"], rel=1e-4)
    assert recipe["loss_mixing"] > no_query_mixes["loss_mixing"] > recipe["loss_infonce"]
    assert recipe["p_positive_mixing"] < no_query_mixes["p_positive_mixing"] < recipe["p_positive_infonce"] < 1
    assert 0 < no_query_mixes["p_synthetic"] < recipe["p_synthetic"] < 1
    assert recipe["cos_query_mix"] > recipe["cos_negative_mix"]  # a query mix keeps part of the query
    assert "cos_query_mix" not in no_query_mixes and 0 <= recipe["query_mixes_above_positive"] <= 1


def test_without_mixes_it_is_infonce(script, mined, scifact_dir):
    (means,) = run(script, mined, scifact_dir, "s=0,sq=0")
    assert means["loss_mixing"] == pytest.approx(means["loss_infonce"], rel=1e-6)
    assert means["p_synthetic"] == 0 and means["p_positive_mixing"] == pytest.approx(means["p_positive_infonce"])
    assert math.isfinite(means["loss_infonce"])


@pytest.mark.parametrize("bad", ["x=3", "N=0", "t=0", "sq=-1"])
def test_bad_settings_are_refused(script, bad):
    with pytest.raises(SystemExit):
        script.parse(["--setting", bad])
