"""``negmine train``: options reach negmine.training.train as a TrainConfig; config file precedence; errors."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import typer
from typer.testing import CliRunner

from negmine.cli.train import train

runner = CliRunner()
app = typer.Typer()
app.command("train", help=train.__doc__)(train)
app.command("noop")(lambda: None)  # two commands, so "train" is a sub-command as in negmine's app


def invoke(args):
    with mock.patch("negmine.training.train") as run:
        run.return_value.num_rows, run.return_value.steps = 8, 2
        run.return_value.model_dir = Path("out/final")
        run.return_value.metrics = {"scifact-test_ndcg@10": 0.5}
        result = runner.invoke(app, ["train", *args])
    return result, run


def test_flags_reach_the_library():
    result, run = invoke(["--data", "runs/x/mined.jsonl", "--model", "minilm", "--loss", "soft-infonce",
                          "--out", "runs/y", "--loss-arg", "alpha=0.5", "--loss-arg", "estimator=bm25",
                          "--temperature", "0.02", "--max-positives", "3", "--num-negatives", "4", "--epochs", "2",
                          "--batch-size", "16", "--lr", "3e-5", "--seed", "7", "--eval-data", "scifact",
                          "--eval-split", "test", "--save-steps", "0", "--no-scores"])
    assert result.exit_code == 0, result.output
    (cfg,), _ = run.call_args
    assert (cfg.data, cfg.model, cfg.loss, cfg.out) == ("runs/x/mined.jsonl", "minilm", "soft-infonce", "runs/y")
    assert cfg.loss_args == {"alpha": 0.5, "estimator": "bm25", "temperature": 0.02}
    assert (cfg.max_positives, cfg.num_negatives, cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.seed) == (
        3, 4, 2.0, 16, 3e-5, 7)
    assert (cfg.eval_data, cfg.eval_split, cfg.save_steps, cfg.use_scores) == ("scifact", "test", 0, False)
    assert "ndcg@10" in result.output


def test_config_file_then_flags_override(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[mine]\nretriever = "bge"\n\n[train]\ndata = "m.jsonl"\nloss = "cwcl"\nbatch_size = 8\n'
                      '[train.loss_args]\npower = 2.0\ntemperature = 0.1\n')
    result, run = invoke(["--config", str(recipe), "--batch-size", "4", "--loss-arg", "threshold=0.3"])
    assert result.exit_code == 0, result.output
    (cfg,), _ = run.call_args
    assert (cfg.data, cfg.loss, cfg.batch_size) == ("m.jsonl", "cwcl", 4)
    assert cfg.loss_args == {"power": 2.0, "temperature": 0.1, "threshold": 0.3}


def test_the_shipped_recipe_parses():
    recipe = Path(__file__).resolve().parents[2] / "training" / "scifact-minilm.toml"
    result, run = invoke(["--config", str(recipe), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert '"loss": "infonce"' in result.output and '"max_positives": 2' in result.output
    run.assert_not_called()


def test_errors_name_the_option():
    result, run = invoke(["--data", "m.jsonl", "--loss", "infonse"])
    assert result.exit_code != 0 and "Did you mean 'infonce'" in str(result.exception)
    result, run = invoke(["--loss", "dice"])
    assert result.exit_code != 0 and "--data" in result.output
    result, run = invoke(["--data", "m.jsonl", "--loss-arg", "alpha"])
    assert result.exit_code != 0 and "KEY=VALUE" in result.output
    run.assert_not_called()


def test_registered_in_negmine_cli():
    from negmine.cli import app as negmine_app

    result = runner.invoke(negmine_app, ["train", "--help"])
    assert result.exit_code == 0 and "--loss" in result.output


def test_training_dynamics_flags_reach_the_library():
    result, run = invoke(["--data", "runs/x/mined.jsonl", "--random-negatives", "2", "--corpus", "scifact",
                          "--batch-sampler", "ngame", "--ngame-cluster-size", "4", "--adore"])
    assert result.exit_code == 0, result.output
    (cfg,), _ = run.call_args
    assert (cfg.random_negatives, cfg.corpus, cfg.batch_sampler, cfg.ngame_cluster_size, cfg.adore) == (
        2, "scifact", "ngame", 4, True)


def test_remine_every_runs_the_dynamic_loop():
    with mock.patch("negmine.dynamic.train_dynamic") as dynamic, mock.patch("negmine.training.train") as plain:
        dynamic.return_value.num_rows, dynamic.return_value.steps = 8, 6
        dynamic.return_value.model_dir, dynamic.return_value.metrics = Path("out/final"), {}
        dynamic.return_value.rounds = [mock.Mock(round=0, steps=3, train_seconds=1.0, remine_seconds=2.5),
                                       mock.Mock(round=1, steps=3, train_seconds=1.0, remine_seconds=None)]
        result = runner.invoke(app, ["train", "--data", "runs/x/mined.jsonl", "--epochs", "2", "--remine-every", "1",
                                     "--remine-unit", "epoch", "--remine-judge", "cross-encoder:ce"])
    assert result.exit_code == 0, result.output
    assert not plain.called
    (cfg,), _ = dynamic.call_args
    assert (cfg.remine_every, cfg.remine_unit, cfg.remine_judge) == (1, "epoch", "cross-encoder:ce")
    assert "re-mined in 2.5 s" in result.output


def test_bad_batch_sampler_is_refused():
    result, run = invoke(["--data", "runs/x/mined.jsonl", "--batch-sampler", "clusters"])
    assert result.exit_code != 0 and not run.called
    assert "batch_sampler='clusters' is not one of" in str(result.exception) + result.output
