"""``negmine eval`` and ``negmine mteb``: outputs, the baseline comparison, and clear errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from negmine.cli import app
from negmine.errors import ConfigError, DataError, ModelNotFoundError

runner = CliRunner()


@pytest.fixture
def toy_beir(tmp_path: Path, toy) -> Path:
    folder = tmp_path / "toy"
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as handle:
        for doc_id, doc in toy.corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": doc["title"], "text": doc["text"]}) + "\n")
    with open(folder / "queries.jsonl", "w") as handle:
        for qid, text in toy.queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{r}" for q, docs in toy.qrels.items() for d, r in docs.items()]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


def _eval(*args: str):
    return runner.invoke(app, ["eval", *args])


def test_eval_writes_metrics_and_prints_table(toy_beir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _eval("--model", "hashing", "--data", str(toy_beir), "--k", "1,5", "--k", "10", "--out", str(out),
                   "--no-cache", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "ndcg" in result.output and "@10" in result.output and "6 queries" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["k_values"] == [1, 5, 10] and metrics["split"] == "test"
    assert set(metrics["per_query"]["ndcg@10"]) == {"q1", "q2", "q3", "q4", "q5", "q6"}
    assert f"{metrics['metrics']['ndcg@10']:.4f}" in result.output
    assert (out / "run.trec").is_file()
    assert json.loads((out / "manifest.json").read_text())["stage"] == "eval"


def test_eval_baseline_prints_paired_test(toy_beir: Path, tmp_path: Path) -> None:
    base_dir = tmp_path / "base"
    assert _eval("--model", "hashing", "--data", str(toy_beir), "--out", str(base_dir), "--no-cache",
                 "--no-progress").exit_code == 0
    # a weaker baseline: every query 0.2 lower on nDCG@10 (real per-query scores, shifted)
    base = json.loads((base_dir / "metrics.json").read_text())
    base["per_query"]["ndcg@10"] = {q: v - 0.2 for q, v in base["per_query"]["ndcg@10"].items()}
    (base_dir / "metrics.json").write_text(json.dumps(base))
    out = tmp_path / "new"
    result = _eval("--model", "hashing", "--data", str(toy_beir), "--out", str(out), "--baseline",
                   str(base_dir / "metrics.json"), "--test", "bootstrap", "--metric", "ndcg@10", "--no-cache",
                   "--no-progress")
    assert result.exit_code == 0, result.output
    assert "+0.2000" in result.output and "paired bootstrap over 6 queries" in result.output
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["results"][0]["diff"] == pytest.approx(0.2)


def test_eval_bad_inputs(toy_beir: Path, tmp_path: Path) -> None:
    result = _eval("--model", str(tmp_path / "missing" / "model"), "--data", str(toy_beir))
    assert isinstance(result.exception, ModelNotFoundError) and "does not exist" in str(result.exception)
    result = _eval("--model", "hashing", "--data", str(toy_beir), "--split", "dev")
    assert isinstance(result.exception, DataError)
    assert "no qrels for split 'dev' (available: test)" in str(result.exception)
    with open(toy_beir / "qrels" / "test.tsv", "a") as handle:
        handle.write("q1\tnot-a-doc\t1\n")
    result = _eval("--model", "hashing", "--data", str(toy_beir), "--no-cache")
    assert isinstance(result.exception, DataError)
    message = str(result.exception)
    assert "test.tsv, line 9, field 'corpus-id'" in message and "--unknown-qrels" in message
    result = _eval("--model", "hashing", "--data", str(toy_beir), "--no-cache", "--unknown-qrels", "keep",
                   "--out", str(tmp_path / "kept"), "--no-progress")
    assert result.exit_code == 0, result.output
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"metrics": {"ndcg@10": 0.5}}))
    result = _eval("--model", "hashing", "--data", str(toy_beir), "--baseline", str(baseline))
    assert isinstance(result.exception, DataError) and "per-query" in str(result.exception)
    assert _eval("--model", "hashing", "--data", str(toy_beir), "--k", "0").exit_code != 0


def test_cli_error_is_one_line_and_exit_code_2(toy_beir: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from negmine.cli import main; main()", "eval", "--model",
                           str(tmp_path / "nope" / "model"), "--data", str(toy_beir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "error: --model " in proc.stderr and "model folder does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mteb_help_does_not_import_mteb() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys\nfrom negmine.cli import app\n"
                           "from typer.testing import CliRunner\n"
                           "r = CliRunner().invoke(app, ['mteb', 'export', '--help'])\n"
                           "assert r.exit_code == 0 and 'SUBMISSION.md' in r.output, r.output\n"
                           "assert 'mteb' not in sys.modules and 'torch' not in sys.modules"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_mteb_run_rejects_unknown_qrels_policy(toy_beir: Path, tmp_path: Path) -> None:
    """A bad --unknown-qrels fails on one line before mteb or a model is loaded."""
    result = CliRunner().invoke(app, ["mteb", "run", "--model", "hashing", "--data", str(toy_beir),
                                      "--unknown-qrels", "ignore", "--out", str(tmp_path)])
    assert isinstance(result.exception, ConfigError)  # negmine.cli.main prints it on one line and exits 2
    assert "--unknown-qrels 'ignore' is not one of error, skip, keep" in str(result.exception)
    assert not (tmp_path / "results").exists()


def test_eval_real_scifact_minilm(scifact_dir: Path, tmp_path: Path) -> None:
    """The CLI on real data (embeddings from the shared cache once any test has encoded SciFact)."""
    result = _eval("--model", "minilm", "--data", str(scifact_dir), "--split", "test", "--out", str(tmp_path),
                   "--no-progress")
    assert result.exit_code == 0, result.output
    ndcg = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["ndcg@10"]
    assert abs(ndcg - 0.6451) <= 0.001
    assert "300 queries" in result.output and f"{ndcg:.4f}" in result.output


def test_mteb_run_and_export_cli(scifact_dir: Path, minilm_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("mteb")
    from negmine.errors import ConfigError

    result = runner.invoke(app, ["mteb", "run", "--model", str(minilm_path), "--data", str(scifact_dir),
                                 "--out", str(tmp_path / "r"), "--no-progress"])
    assert isinstance(result.exception, ConfigError) and "org/name" in str(result.exception)
    result = runner.invoke(app, ["mteb", "run", "--model", str(minilm_path), "--name", "negmine-test/minilm",
                                 "--data", str(scifact_dir), "--out", str(tmp_path / "r"), "--no-progress"])
    assert isinstance(result.exception, ConfigError) and "--training-dataset" in str(result.exception)
    result = runner.invoke(app, ["mteb", "run", "--model", str(minilm_path), "--name", "negmine-test/minilm",
                                 "--training-dataset", "none", "--data", str(scifact_dir), "--out",
                                 str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "SciFact[test]: main score 0.645" in result.output
    result = runner.invoke(app, ["mteb", "export", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "negmine-test/minilm" in result.output and "SciFact: 0.645" in result.output
    assert (tmp_path / "s" / "results" / "negmine-test__minilm").is_dir()
    assert (tmp_path / "s" / "model_meta.py").read_text().startswith("from mteb")
