"""benchmarks/search_scaling.py end to end at toy sizes: every index kind, streamed exact search, the real-corpus
contrast (MiniLM on SciFact through the shared embedding cache), and a page whose every section is written by the
script (no figure typed in)."""

from __future__ import annotations

import json
import re

import pytest


@pytest.fixture(scope="module")
def run(benchmark_script, scifact_dir, tmp_path_factory):
    script = benchmark_script("search_scaling")
    root = tmp_path_factory.mktemp("search_scaling")
    argv = ["--sizes", "500,1500", "--indexes", "flat,numpy,ivf,ivfpq,hnsw", "--queries", "20", "--k", "10",
            "--ann-max", "1500", "--hnsw-max", "1500", "--streamed-size", "1500", "--streamed-queries", "10",
            "--streamed-engine", "numpy", "--real", str(scifact_dir), "--real-queries", "20",
            "--work", str(root / "work"), "--out", str(root / "search_scaling.md")]
    script.main(argv)
    page = (root / "search_scaling.md").read_text()
    twin = json.loads((root / "search_scaling.json").read_text())
    return {"script": script, "page": page, "twin": twin, "argv": argv}


def test_the_page_is_one_invocation_with_its_command_and_twin(run):
    assert f"Command: `python benchmarks/search_scaling.py {' '.join(run['argv'])}`" in run["page"]
    data = run["twin"]["data"]
    assert run["twin"]["command"].startswith("python benchmarks/search_scaling.py --sizes 500,1500")
    assert {(r["n"], r["index"]) for r in data["results"]} == {
        (n, kind) for n in (500, 1500) for kind in ("flat", "numpy", "ivf", "ivfpq", "hnsw")} | {(1500, "streamed")}
    assert not [r for r in data["results"] if "error" in r]
    assert set(run["twin"]["phases"]) >= {"flat 1,500", "streamed 1,500", "real corpora"}


def test_exact_searches_agree_and_streamed_matches_in_memory(run):
    results = run["twin"]["data"]["results"]
    assert all(r["recall"] == pytest.approx(1.0) for r in results if r["index"] in ("flat", "numpy"))
    streamed = next(r for r in results if r["index"] == "streamed")
    assert streamed["ids_equal_in_memory"] and streamed["rows_equal"] == 10 and streamed["max_score_diff"] < 1e-5


def test_real_rows_measure_each_setting_and_pair_with_random_vectors(run):
    script, real = run["script"], run["twin"]["data"]["real"]
    assert [(r["factory"], r["param"]) for r in real] == [(f, script._param(o)) for f, o in script.REAL_SETTINGS]
    assert all(r["corpus"] == "scifact" and r["n"] == 5183 and r["queries"] == 20 and 0 < r["recall"] <= 1
               for r in real)
    # the exact re-rank of IVF-PQ gives IVF-Flat's recall at the same nprobe whenever the short list holds the
    # candidates, and a wider search never loses recall
    by = {(r["factory"], r["param"]): r["recall"] for r in real}
    assert by[("IVF256,Flat", "nprobe=128")] >= by[("IVF256,Flat", "nprobe=32")]
    assert by[("HNSW32", "efSearch=512")] >= by[("HNSW32", "efSearch=128")]
    table = run["page"].split("## The same settings on real corpora")[1]
    for r in real:
        assert re.search(rf"\| scifact \| 5,183 \| {re.escape(r['factory'])}.* \| {r['param']} \| "
                         rf"{r['recall']:.4f} \|", table)


def test_reading_is_computed_from_the_measurements(run):
    script, data = run["script"], run["twin"]["data"]
    lines = script.reading(data["results"], data["real"], 20, 10)
    reading = run["page"].split("## Reading\n\n")[1]
    assert all(line in reading for line in lines)
    streamed = next(r for r in data["results"] if r["index"] == "streamed")
    assert f"{streamed['peak_rss_mb'] / 1024:.2f} GB RSS" in reading and "10 of 10 queries" in reading
    hnsw = [r for r in data["results"] if r["index"] == "hnsw"]
    assert any(line.startswith("- HNSW at efSearch=128 on random vectors: recall@10 ") for line in lines)
    assert f"{hnsw[-1]['build_s'] / 60:.1f} min for 1,500" in reading
