"""negmine.pipeline: skip finished stages, resume, merge partial relabels, provenance, the dev split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from negmine.errors import ConfigError, DataError
from negmine.pipeline import (
    DevSplit,
    LoadSampler,
    Pipeline,
    carve_dev_split,
    git_commit,
    hardware_info,
    hardware_text,
    latest_checkpoint,
    merge_partial,
    read_manifest,
)


def test_finished_stage_is_skipped_and_manifest_has_provenance(tmp_path: Path) -> None:
    events = []
    pipe = Pipeline(on_event=events.append, load_interval=0.01)
    calls = []

    def work(out: Path) -> dict:
        calls.append(out)
        (out / "result.txt").write_text("x")
        return {"rows": 3}

    first = pipe.run("mine", tmp_path / "mine", work, config={"k": 1}, inputs=[])
    second = pipe.run("mine", tmp_path / "mine", work, config={"k": 1})
    assert len(calls) == 1
    assert [e["status"] for e in events] == ["done", "skipped"]
    assert first == second == read_manifest(tmp_path / "mine")
    assert first["rows"] == 3 and first["config"] == {"k": 1} and first["stage"] == "mine"
    assert first["commit"] and first["hardware"]["cores"] >= 1 and first["seconds"] >= 0
    assert first["load_average"]["samples"] >= 1


def test_failed_stage_leaves_no_manifest_and_reruns(tmp_path: Path) -> None:
    pipe = Pipeline()
    attempts = []

    def flaky(out: Path) -> dict:
        attempts.append(1)
        (out / "partial").write_text(str(len(attempts)))  # a cache the retry resumes from
        if len(attempts) == 1:
            raise RuntimeError("killed")
        return {"resumed_from": (out / "partial").read_text()}

    with pytest.raises(RuntimeError):
        pipe.run("judge", tmp_path / "judge", flaky)
    assert not (tmp_path / "judge" / "stage.json").exists()
    manifest = pipe.run("judge", tmp_path / "judge", flaky)
    assert len(attempts) == 2 and manifest["resumed_from"] == "2"
    with pytest.raises(DataError, match="has not finished"):
        read_manifest(tmp_path / "nothing")


def test_inputs_are_hashed(tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text("{}\n")
    manifest = Pipeline().run("s", tmp_path / "s", lambda out: None, inputs=[data])
    import hashlib

    assert manifest["inputs"] == {str(data): hashlib.sha256(b"{}\n").hexdigest()}


def test_latest_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "none") is None
    for step in (5, 40, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "checkpoint-99").write_text("not a folder")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-40")


def test_merge_partial_passes_unjudged_queries_through() -> None:
    everything = [{"query_id": q, "negatives": [q]} for q in ("a", "b", "c", "d")]
    judged = [{"query_id": "c", "negatives": []}, {"query_id": "a", "negatives": ["x"]}]
    merged = merge_partial(everything, judged)
    assert [r["query_id"] for r in merged] == ["a", "b", "c", "d"]
    assert merged == [judged[1], everything[1], judged[0], everything[3]]
    with pytest.raises(DataError, match="not in the input"):
        merge_partial(everything, [{"query_id": "zz"}])


def test_hardware_from_proc_text() -> None:
    cpuinfo = "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n" * 2
    meminfo = "MemTotal:       25165824 kB\nMemFree: 1 kB\n"
    info = hardware_info(cpuinfo, meminfo)
    assert info["cpu"] == "Test CPU 9000" and info["cpu_flags"] == ["sse4_2", "avx", "avx2", "fma", "avx512f"]
    assert info["ram_gib"] == 24.0 and info["cores"] >= 1
    text = hardware_text(info)
    assert "Test CPU 9000 (sse4_2, avx, avx2, fma, avx512f)" in text and "24 GiB RAM" in text


def test_git_commit_of_this_checkout_and_outside(tmp_path: Path) -> None:
    commit = git_commit()
    assert commit == "unknown" or len(commit.split("+")[0]) >= 7
    assert git_commit(tmp_path) == "unknown"


def test_load_sampler_samples() -> None:
    with LoadSampler(interval=0.005) as load:
        import time

        time.sleep(0.05)
    summary = load.summary()
    assert summary["samples"] >= 2 and summary["min"] <= summary["mean"] <= summary["max"]
    with pytest.raises(ValueError):
        LoadSampler(interval=0)


def _beir(root: Path, n_queries: int = 10) -> Path:
    src = root / "data"
    (src / "qrels").mkdir(parents=True)
    (src / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": f"doc {i}"}) + "\n"
                                              for i in range(30)))
    (src / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n"
                                               for i in range(n_queries + 3)))
    rows = ["query-id\tcorpus-id\tscore"]
    for i in range(n_queries):
        rows += [f"q{i}\td{i}\t1"] + ([f"q{i}\td{i + 10}\t1"] if i % 3 == 0 else [])
    (src / "qrels" / "train.tsv").write_text("\n".join(rows) + "\n")
    (src / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq10\td1\t1\nq11\td2\t1\n")
    return src


def test_carve_dev_split_is_seeded_disjoint_and_complete(tmp_path: Path) -> None:
    from negmine.data import load_data

    src = _beir(tmp_path)
    split = carve_dev_split(src, tmp_path / "run" / "scifact", fraction=0.2, seed=3)
    assert isinstance(split, DevSplit) and len(split.dev_queries) == 2 and len(split.train_queries) == 8
    assert set(split.dev_queries).isdisjoint(split.train_queries)
    out = split.folder
    assert (out / "corpus.jsonl").is_symlink() and (out / "qrels" / "test.tsv").is_symlink()
    assert not (out / "qrels" / "train.tsv").exists()  # nothing can train on dev queries by accident
    dev = load_data(out, "dev")
    train = load_data(out, "train-minus-dev")
    full = load_data(src, "train")
    assert set(dev.qrels) == set(split.dev_queries) and set(train.qrels) == set(split.train_queries)
    for qid, docs in full.qrels.items():  # every qrels row lands in exactly one split
        assert (dev.qrels.get(qid) or train.qrels.get(qid)) == docs
    assert load_data(out, "test").qrels == load_data(src, "test").qrels
    again = carve_dev_split(src, tmp_path / "run" / "scifact", fraction=0.2, seed=3)
    assert again.dev_queries == split.dev_queries
    other = carve_dev_split(src, tmp_path / "other", fraction=0.2, seed=4)
    assert other.dev_queries != split.dev_queries  # seeded: another seed draws other queries
    record = json.loads((out / "split.json").read_text())
    assert record["dev_query_ids"] == sorted(split.dev_queries) and record["seed"] == 3


def test_carve_dev_split_refuses_bad_places_and_changed_parameters(tmp_path: Path) -> None:
    src = _beir(tmp_path)
    with pytest.raises(ConfigError, match="run folder"):
        carve_dev_split(src, src / "dev")
    with pytest.raises(ConfigError, match="fraction"):
        carve_dev_split(src, tmp_path / "run", fraction=1.0)
    carve_dev_split(src, tmp_path / "run", seed=1)
    with pytest.raises(ConfigError, match="other parameters"):
        carve_dev_split(src, tmp_path / "run", seed=2)
    (src / "qrels" / "bad.tsv").write_text("q1 d1 1\n")
    with pytest.raises(DataError, match="header"):
        carve_dev_split(src, tmp_path / "run2", train_split="bad")


def test_git_commit_is_dirty_for_code_not_for_reports(tmp_path: Path) -> None:
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    for name in ("code.py", "README.md", "benchmarks/results/r.json"):
        (tmp_path / name).write_text("v1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = git_commit(tmp_path)
    assert "+" not in clean
    (tmp_path / "README.md").write_text("v2\n")
    (tmp_path / "benchmarks" / "results" / "r.json").write_text("v2\n")
    assert git_commit(tmp_path) == clean  # a run rewrote its report and README's block
    (tmp_path / "code.py").write_text("v2\n")
    assert git_commit(tmp_path) == clean + "+dirty"
