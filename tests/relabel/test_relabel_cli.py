"""``negmine relabel`` options reach the library unchanged; bad specs fail with a clear message; cheap imports."""

from __future__ import annotations

import json
import subprocess
import sys
from unittest import mock

import pytest
from typer.testing import CliRunner

from negmine.errors import ConfigError
from negmine.relabel.factory import JudgeOptions, load_judge, split_spec


def test_cli_passes_options_to_the_library(tmp_path):
    from negmine.cli import app

    fake_summary = {"queries": 1, "relabeled": 0}
    with mock.patch("negmine.relabel.factory.load_judge", return_value="JUDGE") as load, \
            mock.patch("negmine.relabel.api.relabel_file", return_value=fake_summary) as run:
        result = CliRunner().invoke(app, [
            "relabel", "--mined", str(tmp_path / "m.jsonl"), "--judge", "llm:http://127.0.0.1:9/v1@qwen",
            "--out", str(tmp_path / "out"), "--mode", "filter", "--on-unsure", "keep", "--cheap-judge",
            "cross-encoder:ce", "--clear-below", "0.2", "--concurrency", "8", "--window", "10", "--step", "5",
            "--limit", "7", "--max-passage-words", "0", "--threads", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    (spec,), kwargs = load.call_args
    assert spec == "llm:http://127.0.0.1:9/v1@qwen"
    assert kwargs["cheap"] == "cross-encoder:ce" and kwargs["clear_below"] == 0.2
    assert kwargs["cache"] == str(tmp_path / "out" / "cache.jsonl")
    options = kwargs["options"]
    assert (options.concurrency, options.window, options.step, options.max_passage_words) == (8, 10, 5, None)
    assert options.n_threads == 3
    (mined, judge, out), kwargs = run.call_args
    assert judge == "JUDGE" and out == tmp_path / "out"
    assert kwargs["mode"] == "filter" and kwargs["on_unsure"] == "keep" and kwargs["limit"] == 7
    assert kwargs["show_progress_bar"] is False
    assert '"queries": 1' in result.output


def test_help_lists_examples():
    from negmine.cli import app

    result = CliRunner().invoke(app, ["relabel", "--help"])
    assert result.exit_code == 0 and "--judge" in result.output


@pytest.mark.parametrize("spec,message", [
    ("llmm:http://x", "did you mean 'llm'"),
    ("cross_encoder:x", "did you mean 'cross-encoder'"),
    ("llm", "KIND:TARGET"),
    ("llm:", "KIND:TARGET"),
])
def test_bad_judge_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        split_spec(spec)


def test_llm_target_that_is_nothing_known():
    with pytest.raises(ConfigError, match="neither an http"):
        load_judge("llm:qwen", options=JudgeOptions())


def test_missing_gguf_is_a_model_not_found_error(tmp_path):
    from negmine.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="no such GGUF file"):  # found before llama_cpp is imported
        load_judge(f"llm:{tmp_path / 'nope.gguf'}")


def test_cli_reports_data_errors_without_traceback(tmp_path):
    mined = tmp_path / "mined.jsonl"
    mined.write_text('{"query_id": "q"}\n')
    result = subprocess.run([sys.executable, "-c", "from negmine.cli import main; main()", "relabel", "--mined",
                             str(mined), "--judge", "llm:http://127.0.0.1:9/v1@m", "--out", str(tmp_path / "o"),
                             "--no-progress"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "line 1" in result.stderr and "field 'query'" in result.stderr and "Traceback" not in result.stderr


def test_relabel_modules_import_no_heavy_dependency():
    modules = ["negmine.relabel", "negmine.relabel.base", "negmine.relabel.prompts", "negmine.relabel.parsing",
               "negmine.relabel.cache", "negmine.relabel.window", "negmine.relabel.llm", "negmine.relabel.arhn",
               "negmine.relabel.api", "negmine.relabel.cascade", "negmine.relabel.cross_encoder",
               "negmine.relabel.clients", "negmine.relabel.factory", "negmine.relabel.testing"]
    code = ("import sys, importlib\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "heavy = [m for m in ('torch', 'openai', 'llama_cpp', 'transformers', 'sentence_transformers') "
            "if m in sys.modules]\n"
            "print(json.dumps(heavy))")
    result = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
