"""benchmarks/_report.py: NAME.md + NAME.json with command, commit, hardware and per-phase load; twins of old reports;
every results file has its twin."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# reports another helper converts (remove the entry when its twin lands: the test then insists on it)
PENDING_TWINS: dict[str, str] = {}  # report name -> why its twin is not written yet
# Pages written before their script wrote twins: the twin is parsed from the page ("converted_from"), so it holds the
# page's figures but not the run's commit, hardware or load. Each leaves this list when its script is rerun; no page
# may join it (a new or rerun report is written by its script, twin included).
CONVERTED_PENDING: dict[str, str] = {
    "relabel_scifact.md": "the 100-query ARHN run (about 55 quiet minutes of llama.cpp)",
    "relabel_scifact_spotcheck.md": "written by the same run as relabel_scifact.md",
}


@pytest.fixture(scope="module")
def report_module(benchmark_script):
    return benchmark_script("_report")


def test_report_writes_md_and_json_twins(report_module, tmp_path, monkeypatch):
    monkeypatch.setenv("NEGMINE_MODELS", "/models/here")
    report = report_module.Report("demo", "benchmarks/demo.py", ["--model", "/models/here/x.gguf", "a b"],
                                  out=tmp_path / "demo.md", load_interval=0.01)
    with report.phase("encode"):
        time.sleep(0.03)
    with report.phase("encode"):  # repeated labels accumulate
        time.sleep(0.01)
    text = report.write("# Demo\n\n| x | y |\n|---|---|\n| 1.25 | 2 |", {"x": 1.25, "y": 2}, echo=False)
    assert (tmp_path / "demo.md").read_text() == text
    assert "Command: `python benchmarks/demo.py --model $NEGMINE_MODELS/x.gguf 'a b'`" in text
    assert "Commit: " in text and "logical cores" in text and "GiB RAM" in text
    assert "encode " in text and "at load" in text
    twin = json.loads((tmp_path / "demo.json").read_text())
    assert twin["name"] == "demo" and twin["data"] == {"x": 1.25, "y": 2}
    assert twin["command"] == "python benchmarks/demo.py --model $NEGMINE_MODELS/x.gguf 'a b'"
    assert twin["hardware"]["cores"] >= 1 and twin["commit"]
    phase = twin["phases"]["encode"]
    assert phase["seconds"] >= 0.04 and phase["load_average"]["samples"] >= 2


def test_print_only_writes_nothing(report_module, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report_module.Report("demo", "benchmarks/demo.py", [], out="-").write("# x", {}, echo=True)
    assert "# x" in capsys.readouterr().out and not list(tmp_path.iterdir())


def test_convert_markdown_parses_never_types(report_module, tmp_path):
    md = tmp_path / "old.md"
    md.write_text("# Old\n\nCommand: `python benchmarks/old.py --n 5`\n\n| run | s | ratio |\n|---|---:|---:|\n"
                  "| a | 1,251.3 | 1.00 |\n| b | 642.8 | **0.51** |\n\nText with −0.47 points and 99.9 %.\n")
    twin = json.loads(report_module.convert_markdown(md, note="history").read_text())
    assert twin["converted_from"] == "old.md" and twin["raw_data"] is False and twin["note"] == "history"
    assert twin["command"] == "python benchmarks/old.py --n 5"
    assert twin["tables"] == [{"header": ["run", "s", "ratio"], "rows": [["a", "1,251.3", "1.00"],
                                                                          ["b", "642.8", "**0.51**"]]}]
    assert {"1,251.3", "642.8", "0.51", "-0.47", "99.9"} <= set(twin["numbers"])


def test_every_results_report_has_its_twin():
    missing, converted = [], []
    for md in sorted(RESULTS.rglob("*.md")):
        twin = md.with_suffix(".json")
        if md.name in PENDING_TWINS:
            assert not twin.exists(), f"{md.name} has its twin now: remove it from PENDING_TWINS"
            continue
        if not twin.exists():
            missing.append(str(md.relative_to(REPO)))
            continue
        data = json.loads(twin.read_text())
        if data.get("raw_data") is False:
            assert data["converted_from"] == md.name
            if md.parent.name == "history":  # superseded pages, kept as they were
                continue
            assert md.name in CONVERTED_PENDING, f"{md.name}: a converted twin; rerun its script to write the real one"
            converted.append(md.name)
        else:
            meta = data if "command" in data else data.get("meta", {})  # a schema of its own keeps them in "meta"
            assert meta["command"].startswith("python benchmarks/") and meta["commit"] and meta["hardware"], md.name
            assert f"Command: `{meta['command']}`" in md.read_text(), md.name
    assert missing == [], f"results without a .json twin: {missing}"
    rerun = sorted(set(CONVERTED_PENDING) - set(converted))
    assert rerun == [], f"written by their scripts now: remove {rerun} from CONVERTED_PENDING"
