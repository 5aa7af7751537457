"""benchmarks/_report.py: the Command: line of a report and publishing it (negmine itself never prints)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def report(benchmark_script):
    return benchmark_script("_report")


def test_publish_prints_and_writes_unless_dash(report, tmp_path, capsys):
    report.publish("# table\n", tmp_path / "r" / "table.md")
    report.publish("# only printed\n", "-")
    assert (tmp_path / "r" / "table.md").read_text() == "# table\n"
    assert capsys.readouterr().out == "# table\n\n# only printed\n\n"
    assert not (tmp_path / "-").exists()


def test_command_line_quotes_arguments_and_names_the_models_folder_by_its_variable(report, monkeypatch):
    monkeypatch.setenv("NEGMINE_MODELS", "/home/me/models/")
    line = report.command_line("benchmarks/x.py", ["judge", "--judge", "llm-yes:/home/me/models/q.gguf", "a b"])
    assert line == "python benchmarks/x.py judge --judge llm-yes:$NEGMINE_MODELS/q.gguf 'a b'"
    monkeypatch.delenv("NEGMINE_MODELS")
    assert report.command_line("benchmarks/x.py", []) == "python benchmarks/x.py"
