"""An index folder is used only for exactly the texts it was built from; a killed ``negmine index build`` reruns to
the same folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")

from negmine.index.store import MANIFEST, IndexStoreError, build_index_dir, load_index_dir  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def write_beir(folder: Path, texts: dict[str, str]) -> Path:
    """A small BEIR folder: one query per document, each document its query's positive."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in texts.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{d}", "text": f"about {t.split()[0]}"})
                                                  + "\n" for d, t in texts.items()))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{d}\t{d}\t1\n"
                                                                                       for d in texts))
    return folder


TEXTS = {f"d{i}": f"{w} is a word about topic {i % 5} and more text number {i}" for i, w in enumerate(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split())}


def in_process(argv: list[str]) -> int:
    """``negmine ARGV`` in this process (a process start costs seconds); returns the exit code."""
    from unittest import mock

    from negmine.cli import main

    with mock.patch.object(sys, "argv", ["negmine", *argv]):
        try:
            main()
        except SystemExit as stop:
            return int(stop.code or 0)
    return 0


def test_mining_refuses_an_index_built_from_other_texts_with_the_same_ids(tmp_path, capsys):
    """The silently-wrong case of issue 22: same ids, other texts -> exit 2 naming the documents that differ."""
    old = write_beir(tmp_path / "old", TEXTS)
    changed = dict(TEXTS, d3="a completely different document text", d7="another replaced text")
    new = write_beir(tmp_path / "new", changed)
    assert in_process(["index", "build", "--retriever", "hashing", "--data", str(old), "--factory", "Flat",
                       "--no-cache", "--out", str(tmp_path / "ix")]) == 0
    mine = ["mine", "--retriever", "hashing", "--index-dir", str(tmp_path / "ix"), "--no-cache", "--range", "0:6",
            "--num-negatives", "2", "--too-few", "pad"]
    assert in_process([*mine, "--data", str(old), "--out", str(tmp_path / "m-old")]) == 0
    capsys.readouterr()
    assert in_process([*mine, "--data", str(new), "--out", str(tmp_path / "m-new")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "built from other texts: 2 of 19 documents have the same id but a different text (e.g. 'd3', 'd7')" in err
    assert not (tmp_path / "m-new" / "mined.jsonl").exists()


def test_load_checks_texts(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    ids = [f"d{i}" for i in range(40)]
    texts = [f"text {i}" for i in range(40)]
    build_index_dir(tmp_path / "ix", x, ids, doc_texts=texts)
    load_index_dir(tmp_path / "ix", doc_ids=ids, doc_texts=texts, verify="sha256")
    other = [t + "!" if i % 3 == 0 else t for i, t in enumerate(texts)]
    with pytest.raises(IndexStoreError, match=r"14 of 40 documents .* \(e\.g\. 'd0', 'd3', 'd6', 'd9', 'd12', \.\.\."):
        load_index_dir(tmp_path / "ix", doc_ids=ids, doc_texts=other)
    with pytest.raises(IndexStoreError, match="first difference at row 0: indexed id 'd0', corpus id 'x0'"):
        load_index_dir(tmp_path / "ix", doc_ids=["x0", *ids[1:]], doc_texts=texts)
    build_index_dir(tmp_path / "old", x, ids)  # an index that records no text hash cannot vouch for the texts
    load_index_dir(tmp_path / "old", doc_ids=ids)
    with pytest.raises(IndexStoreError, match="records no hash of its document texts"):
        load_index_dir(tmp_path / "old", doc_ids=ids, doc_texts=texts)
    with pytest.raises(IndexStoreError, match="texts for 40 embeddings"):
        build_index_dir(tmp_path / "bad", x, ids, doc_texts=texts[:-1])


KILL_AT = {  # a SIGKILL at each step of a build, from inside the process (a real kill, not an exception)
    "after-embeddings": "negmine.index.store._build_and_save",
    "after-index": "negmine.index.store._measure_recall",
    "before-manifest": "negmine.index.store._file_table",
}


def _folder_state(folder: Path) -> dict:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.pop("timings")
    return manifest


def test_a_killed_build_reruns_to_the_same_index(tmp_path, capsys):
    """SIGKILL at each step of a build (a real kill of a child process), then the same command without --overwrite:
    the folder ends identical (every file's sha256, the manifest but its timings) to an uninterrupted build."""
    data = write_beir(tmp_path / "beir", TEXTS)
    args = ["index", "build", "--retriever", "hashing", "--data", str(data), "--factory", "IVF2,Flat",
            "--train-size", "19", "--recall-queries", "5", "--recall-k", "3", "--no-cache"]
    assert in_process([*args, "--out", str(tmp_path / "reference")]) == 0
    for step, target in KILL_AT.items():
        out = tmp_path / step
        module, _, name = target.rpartition(".")
        killer = (f"import os, signal, importlib; m = importlib.import_module({module!r}); "
                  f"setattr(m, {name!r}, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)); "
                  "from negmine.cli import main; main()")
        killed = subprocess.run([sys.executable, "-c", killer, *args, "--out", str(out)], capture_output=True,
                                text=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not (out / MANIFEST).exists() and any(out.iterdir()), step
        assert in_process([*args, "--out", str(out)]) == 0, step  # no --overwrite: a half-built folder is no index
        assert _folder_state(out) == _folder_state(tmp_path / "reference"), step
        load_index_dir(out, verify="sha256")
    assert in_process([*args, "--out", str(tmp_path / "reference")]) == 2  # a complete index is still protected
    assert "already exists" in capsys.readouterr().err
