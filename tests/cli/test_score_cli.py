"""``negmine score``, ``negmine mine --teacher``, ``--max-seq-length`` on eval/mine and ``negmine train --scores``:
the flags reach the library."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

from typer.testing import CliRunner

from negmine.cli import app

runner = CliRunner()


def test_score_flags_reach_the_config(tmp_path: Path) -> None:
    with mock.patch("negmine.scoring.score_mined") as score:
        score.return_value.stats = {"queries": 3}
        score.return_value.out_dir = tmp_path
        result = runner.invoke(app, ["score", "--mined", "m.jsonl", "--teacher", "embeddinggemma,mpnet:0.7,0.3",
                                     "--out", str(tmp_path), "--max-seq-length", "512", "--data", "scifact",
                                     "--guard", "teacher-above-positive", "--block-size", "8", "--no-progress",
                                     "--max-passage-words", "50"])
    assert result.exit_code == 0, result.output
    cfg = score.call_args.args[0]
    assert (cfg.mined, cfg.teacher, cfg.max_seq_length, cfg.data, cfg.guard, cfg.block_size) == (
        "m.jsonl", "embeddinggemma,mpnet:0.7,0.3", 512, "scifact", "teacher-above-positive", 8)
    assert cfg.show_progress_bar is False and cfg.max_passage_words == 50


def test_score_dry_run_and_bad_guard() -> None:
    result = runner.invoke(app, ["score", "--mined", "m", "--teacher", "minilm", "--dry-run"])
    assert result.exit_code == 0 and json.loads(result.output)["teacher"] == "minilm"
    bad = runner.invoke(app, ["score", "--mined", "m", "--teacher", "minilm", "--guard", "above", "--dry-run"])
    assert bad.exit_code != 0 and "guard 'above'" in str(bad.exception)


def test_mine_teacher_shortcut_scores_into_out_scored(tmp_path: Path) -> None:
    with mock.patch("negmine.mining.run_mining") as run, mock.patch("negmine.scoring.score_mined") as score:
        run.return_value.stats.table.return_value = []
        run.return_value.timings = {}
        score.return_value.stats = {}
        score.return_value.out_dir = tmp_path / "scored"
        result = runner.invoke(app, ["mine", "--retriever", "minilm", "--data", "scifact", "--out", str(tmp_path),
                                     "--max-seq-length", "128", "--teacher", "embeddinggemma",
                                     "--teacher-max-seq-length", "512", "--guard", "teacher-above-positive"])
    assert result.exit_code == 0, result.output
    assert run.call_args.args[0].max_seq_length == 128
    cfg = score.call_args.args[0]
    assert cfg.mined == str(tmp_path / "mined.jsonl") and cfg.out == str(tmp_path / "scored")
    assert (cfg.teacher, cfg.max_seq_length, cfg.data, cfg.guard) == ("embeddinggemma", 512, "scifact",
                                                                        "teacher-above-positive")


def test_mine_guard_needs_a_teacher() -> None:
    with mock.patch("negmine.mining.run_mining") as run:
        result = runner.invoke(app, ["mine", "--guard", "teacher-above-positive"])
    assert result.exit_code != 0 and not run.called


def test_eval_max_seq_length_reaches_the_encoder() -> None:
    with mock.patch("negmine.evaluation.beir.evaluate_beir") as evaluate:
        runner.invoke(app, ["eval", "--model", "minilm", "--data", "scifact", "--max-seq-length", "256"])
    assert evaluate.call_args.kwargs["max_seq_length"] == 256


def test_train_scores_flag(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--data", "x.jsonl", "--loss", "listwise", "--scores", "teacher",
                                 "--loss-arg", "teacher_temperature=0.02", "--dry-run"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["scores"] == "teacher" and config["loss_args"] == {"teacher_temperature": 0.02}
