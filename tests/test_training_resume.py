"""`negmine train` killed with SIGKILL between checkpoints resumes from the last checkpoint
(``--resume-from-checkpoint last``) and ends within the measured tolerance of an uninterrupted run
(benchmarks/train_resume.py measures it; results in benchmarks/results/train_resume.md)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def setup(tmp_path_factory, benchmark_script, scifact_dir, minilm_path):
    pytest.importorskip("sentence_transformers")
    bench = benchmark_script("train_resume")
    work = tmp_path_factory.mktemp("train_resume")
    model = bench.tiny_model(work / "tiny-bert", minilm_path)
    mined = bench.mined_file(scifact_dir, work / "mined.jsonl")
    return bench, work, model, mined, scifact_dir


def test_killed_between_checkpoints_resumes_to_the_uninterrupted_result(setup):
    bench, work, model, mined, data = setup
    reference = work / "uninterrupted"
    done = bench.run(bench.train_args(mined, model, reference, data), in_process=True)
    assert done.returncode == 0, done.stderr[-3000:]
    out = work / "killed"
    info = bench.killed_then_resumed(bench.train_args(mined, model, out, data), out, kill_at=5, in_process=True)
    assert info["checkpoints_at_kill"][-1] == 4  # died after step 5, between the checkpoints at 4 and 6
    diff = bench.differences(reference, out)
    assert diff["max_abs_metric_difference"] <= bench.TOLERANCE, diff
    assert diff["max_abs_weight_difference"] <= 1e-5, diff


def test_last_checkpoint_skips_a_checkpoint_cut_short(tmp_path):
    from negmine.training import last_checkpoint

    assert last_checkpoint(tmp_path) is None
    for step, complete in ((3, True), (6, True), (9, False)):  # the kill hit while checkpoint-9 was being written
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoints" / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoints" / "checkpoint-6"


def test_resume_from_a_folder_that_is_not_a_checkpoint(tmp_path):
    pytest.importorskip("torch")
    from negmine.errors import ConfigError
    from negmine.training import TrainConfig, resume_checkpoint

    assert resume_checkpoint(TrainConfig(data="x", out=str(tmp_path), resume_from_checkpoint="last")) is None
    with pytest.raises(ConfigError, match="not a complete checkpoint folder"):
        resume_checkpoint(TrainConfig(data="x", out=str(tmp_path), resume_from_checkpoint=str(Path(tmp_path))))
