"""benchmarks/pipeline_scaling.py at tiny sizes (a few seconds): the synthetic corpora, the stand-in encoder, the
per-stage peak memory and the report, through the real mining path (local mode; the Ray mode starts a cluster and is
left to the full run)."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ps(benchmark_script):
    return benchmark_script("pipeline_scaling")


def test_corpora_are_prefixes_with_the_same_queries(ps, tmp_path):
    alone = ps.write_corpus(tmp_path / "alone", 1500, 3000, 20, 1500)  # generated (the largest is not there)
    large = ps.write_corpus(tmp_path, 3000, 3000, 20, 1500)
    small = ps.write_corpus(tmp_path, 1500, 3000, 20, 1500)  # copied from the largest's first lines
    assert (alone / "corpus.jsonl").read_bytes() == (small / "corpus.jsonl").read_bytes()
    small_lines = (small / "corpus.jsonl").read_text().splitlines()
    large_lines = (large / "corpus.jsonl").read_text().splitlines()
    assert len(small_lines) == 1500 and large_lines[:1500] == small_lines
    for name in ("queries.jsonl", "qrels/train.tsv"):
        assert (small / name).read_bytes() == (large / name).read_bytes()
    words = [len(json.loads(line)["text"].split()) for line in large_lines]
    assert min(words) >= ps.WORDS[0] and max(words) <= ps.WORDS[1]
    qrels = (small / "qrels" / "train.tsv").read_text().splitlines()[1:]
    docs = {json.loads(line)["_id"]: json.loads(line) for line in small_lines}
    for query, row in zip((small / "queries.jsonl").read_text().splitlines(), qrels):
        qid, doc, _ = row.split("\t")
        positive = docs[doc]
        assert set(json.loads(query)["text"].split()) <= set(f"{positive['title']} {positive['text']}".split())


def test_stand_in_encoder_is_deterministic_and_lexical(ps):
    words = ps.vocabulary(200)
    enc, again = ps.VocabEncoder(words, dim=32), ps.VocabEncoder(words, dim=32)
    docs = [" ".join(words[:50]), " ".join(words[100:150])]
    d = enc.encode_corpus(docs)
    assert np.array_equal(d, again.encode_corpus(docs)) and np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)
    q = enc.encode_queries([" ".join(words[10:18])])
    assert (q @ d.T)[0, 0] > (q @ d.T)[0, 1]
    assert enc.fingerprint() == again.fingerprint() and enc.seconds > 0


def test_peak_rss_is_reset_between_stages(ps):
    ps.reset_peak()
    base = ps.peak_rss()  # this process's RSS now (pytest, and whatever earlier tests loaded)
    big = np.ones(200 * 2**20 // 8)  # 200 MB
    assert ps.peak_rss() > base + 190 * 2**20
    del big
    ps.reset_peak()
    assert ps.peak_rss() < base + 50 * 2**20


def test_analysis_flags_superlinear_growth(ps):
    def run(n, load):
        stages = dict.fromkeys((*ps.STAGES, "encode"), n / 1e6)
        stages["load"] = load
        parts = {p: {"seconds": 1.0, "peak_rss": 10**9} for p in ps.PARTS}
        return {"mode": "local", "n": n, "stages": stages, "parts": parts, "vector_bytes": n * 256,
                "mined_sha256": "x"}

    linear = ps.analyse([run(10**6, 1.0), run(3 * 10**6, 3.0)], rate=10_000)["local"]
    assert linear["targets"]["linear"] and linear["growth_per_million"]["load"] == pytest.approx(1.0)
    quadratic = ps.analyse([run(10**6, 1.0), run(3 * 10**6, 9.0)], rate=10_000)["local"]
    assert not quadratic["targets"]["linear"] and quadratic["growth_per_million"]["load"] == pytest.approx(3.0)
    # overhead: 6 non-encoding stages of 3 s at 3M vs 300 s of encoding at 10,000 docs/s
    assert linear["overhead_fraction"][3 * 10**6] == pytest.approx(18 / 300)


def test_tiny_run_writes_the_report(ps, tmp_path):
    out = tmp_path / "report" / "pipeline_scaling.md"
    ps.main(["--sizes", "1500,3000", "--modes", "local", "--queries", "30", "--work", str(tmp_path / "work"),
             "--out", str(out), "--encode-docs-per-s", "5000"])
    report = json.loads(out.with_suffix(".json").read_text())
    results = report["data"]["results"]
    assert [r["n"] for r in results] == [1500, 3000] and all("error" not in r for r in results)
    for r in results:
        assert set(r["stages"]) == {"load", "encode", "cache", "index", "search", "mine", "write"}
        assert set(r["parts"]) == set(ps.PARTS) and r["records"] > 0
        assert all(0 < p["peak_rss"] < 4 * 10**9 for p in r["parts"].values())
        assert (tmp_path / "work" / f"run_local_{r['n']}" / "out" / "mined.jsonl").exists()
    analysis = report["data"]["analysis"]["local"]
    assert analysis["sizes"] == [1500, 3000] and report["data"]["encode_docs_per_s"] == 5000
    text = out.read_text()
    assert "| local | 3,000 |" in text and "5,000 docs/s" in text
    assert "Command: `python benchmarks/pipeline_scaling.py" in text


def test_a_rerun_reuses_finished_rows_of_the_same_code(ps, tmp_path, monkeypatch):
    work, out = tmp_path / "work", tmp_path / "report" / "pipeline_scaling.md"
    argv = ["--sizes", "1500", "--modes", "local", "--queries", "20", "--work", str(work), "--out", str(out),
            "--encode-docs-per-s", "5000", "--compare-storage", "0"]
    ps.main(argv)
    first = json.loads(out.with_suffix(".json").read_text())
    calls = []
    real_run_child = ps.run_child
    monkeypatch.setattr(ps, "run_child", lambda *a, **k: calls.append(a) or real_run_child(*a, **k))
    ps.main(argv)  # same code: the row and its timed phase come back from WORK/rows, no child runs
    second = json.loads(out.with_suffix(".json").read_text())
    assert calls == []
    assert second["data"]["results"] == first["data"]["results"]
    assert second["phases"]["local 1,500"] == first["phases"]["local 1,500"]
    monkeypatch.setattr(ps, "code_fingerprint", lambda: "other code")
    ps.main(argv)  # the code under test changed: the row is measured again
    assert len(calls) == 1


def test_readme_block_is_the_targets_section(ps, tmp_path):
    text = ("# t\n\nintro\n\n## Targets\n\nMiniLM at 14,200 docs/s.\n\n| mode | x |\n|---|---|\n| local | yes |\n\n"
            "Growth note.\n\n## How the corpus is held\n\n| a |\n\n---\n\nCommand: `x`\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{ps.README_START}\nold\n{ps.README_END}\nafter\n")
    ps.write_readme(readme, text)
    out = readme.read_text()
    assert out.startswith("before\n") and out.endswith(f"{ps.README_END}\nafter\n")
    block = out.split(ps.README_START)[1].split(ps.README_END)[0]
    assert "| local | yes |" in block and "Growth note." in block and "corpus is held" not in block
    assert "old" not in block and "Command" not in block
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="pipeline-scaling"):
        ps.write_readme(readme, text)


def test_reanalyse_rederives_the_stages_and_keeps_what_measured_them(ps, tmp_path):
    work, out = tmp_path / "work", tmp_path / "r" / "pipeline_scaling.md"
    ps.main(["--sizes", "1500", "--modes", "local", "--queries", "20", "--work", str(work), "--out", str(out),
             "--encode-docs-per-s", "5000", "--compare-storage", "0"])
    report = json.loads(out.with_suffix(".json").read_text())
    local = report["data"]["results"][0]
    # a Ray row as rows were recorded before `actor_pool`: summed model time of every actor process
    ray_row = {**local, "mode": "ray", "model_seconds": 3.0, "actors": 7, "stages": {"stale": 1.0}}
    ray_row.pop("actor_pool", None)
    report["data"]["results"].append(ray_row)
    source = tmp_path / "source.json"
    source.write_text(json.dumps(report))
    again = tmp_path / "again" / "pipeline_scaling.md"
    for src in (source, again.with_suffix(".json")):  # a re-derivation of a re-derivation keeps the measuring run
        ps.main(["--reanalyse", str(src), "--out", str(again)])
        data = json.loads(again.with_suffix(".json").read_text())["data"]
        stages = data["results"][1]["stages"]
        assert stages["encode"] == 1.5 == ps.derive_stages(ray_row)["encode"]  # 3.0 s over the 2 actors at once
        assert stages["cache"] == pytest.approx(local["timings"]["encode_corpus"] - 1.5)
        assert data["results"][0]["stages"] == local["stages"]
        assert data["measured"]["command"] == report["command"] and data["measured"]["commit"] == report["commit"]
        assert f"Measured by `{report['command']}`" in again.read_text()
