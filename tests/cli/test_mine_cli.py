from unittest import mock

from typer.testing import CliRunner

from negmine.cli import app

runner = CliRunner()


def invoke(args):
    with mock.patch("negmine.mining.run_mining") as run:
        run.return_value.stats.table.return_value = []
        run.return_value.timings = {}
        result = runner.invoke(app, ["mine", *args])
    return result, run


def test_flags_reach_the_library():
    result, run = invoke(
        [
            "--retriever",
            "bge",
            "--data",
            "scifact",
            "--split",
            "train",
            "--strategy",
            "perc-pos",
            "--percentage",
            "0.9",
            "--range",
            "5:40",
            "--num-negatives",
            "4",
            "--sampling",
            "softmax",
            "--temperature",
            "0.1",
            "--seed",
            "7",
            "--format",
            "triplet",
            "--out",
            "runs/x",
        ]
    )
    assert result.exit_code == 0, result.output
    (config,), _ = run.call_args
    assert (config.retriever, config.data, config.percentage, config.range_min, config.range_max) == (
        "bge",
        "scifact",
        0.9,
        5,
        40,
    )
    assert (config.num_negatives, config.sampling, config.temperature, config.seed, config.format, config.out) == (
        4,
        "softmax",
        0.1,
        7,
        "triplet",
        "runs/x",
    )


def test_config_file_then_flags_override(tmp_path):
    cfg = tmp_path / "mine.toml"
    cfg.write_text('[mine]\nretriever = "mpnet"\nnum_negatives = 3\nrange_max = 30\nsampling = "random"\n')
    result, run = invoke(["--config", str(cfg), "--num-negatives", "5"])
    assert result.exit_code == 0, result.output
    (config,), _ = run.call_args
    assert (config.retriever, config.num_negatives, config.range_max, config.sampling) == ("mpnet", 5, 30, "random")


def test_dry_run_prints_config_and_does_not_mine():
    result, run = invoke(["--dry-run", "--range", ":20", "--num-negatives", "3"])
    assert result.exit_code == 0 and '"range_max": 20' in result.output
    run.assert_not_called()


def test_bad_values_are_reported(tmp_path):
    result, _ = invoke(["--range", "5-40"])
    assert result.exit_code != 0 and "MIN:MAX" in result.output
    cfg = tmp_path / "bad.toml"
    cfg.write_text("num_negativs = 3\n")
    result, _ = invoke(["--config", str(cfg)])
    assert "Did you mean 'num_negatives'" in str(result.exception)


def test_main_turns_errors_into_exit_code_2(capsys, monkeypatch):
    import pytest

    from negmine.cli import main

    monkeypatch.setattr("sys.argv", ["negmine", "mine", "--retriever", "bgee", "--data", "toy-missing"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err


def test_many_positive_flags_reach_the_library():
    result, run = invoke(
        [
            "--margin-reference",
            "highest",
            "--positive-grade",
            "2",
            "--exclude-grade",
            "1",
            "--block-candidates",
            "5000",
        ]
    )
    assert result.exit_code == 0, result.output
    (config,), _ = run.call_args
    assert (config.margin_reference, config.positive_grade, config.exclude_grade, config.block_candidates) == (
        "highest",
        2,
        1,
        5000,
    )
    result, _ = invoke(["--positive-grade", "1", "--exclude-grade", "1"])
    assert "exclude_grade (1) must be below positive_grade (1)" in str(result.exception)
