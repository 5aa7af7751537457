"""negmine.io: atomic writes keep the old file on failure, JSON helpers, hashes, manifests."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from negmine.io import (
    atomic_open,
    hash_inputs,
    sha256_file,
    sha256_texts,
    write_json,
    write_jsonl,
    write_manifest,
)


def test_atomic_open_replaces_the_file_only_on_success(tmp_path):
    path = tmp_path / "out" / "table.md"
    with atomic_open(path) as handle:
        handle.write("first")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half of the second")
        raise RuntimeError("interrupted")
    assert path.read_text() == "first"
    assert [p.name for p in path.parent.iterdir()] == ["table.md"]  # no temporary file left behind


def test_atomic_open_gives_the_mode_open_would(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "new.md") as handle:
            handle.write("x")
        assert (tmp_path / "new.md").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600
        (tmp_path / "new.md").chmod(0o640)
        with atomic_open(tmp_path / "new.md") as handle:
            handle.write("y")
        assert (tmp_path / "new.md").stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    finally:
        os.umask(umask)


def test_atomic_open_binary(tmp_path):
    with atomic_open(tmp_path / "x.bin", "wb") as handle:
        handle.write(b"\x00\x01")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\x01"


def test_json_helpers_write_numpy_and_paths(tmp_path):
    write_json(tmp_path / "a.json", {"n": np.int64(3), "v": np.arange(2), "p": tmp_path})
    assert json.loads((tmp_path / "a.json").read_text()) == {"n": 3, "v": [0, 1], "p": str(tmp_path)}
    assert write_jsonl(tmp_path / "b.jsonl", ({"i": i} for i in range(3))) == 3
    assert [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()] == [{"i": 0}, {"i": 1},
                                                                                             {"i": 2}]
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json(tmp_path / "c.json", {"x": object()})
    assert not (tmp_path / "c.json").exists()


def test_hashes(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_bytes(b"abc")
    assert sha256_file(tmp_path / "d" / "f.txt") == hashlib.sha256(b"abc").hexdigest()
    assert sha256_texts(["ab"]) != sha256_texts(["a", "b"]) and sha256_texts(["a", "b"]) != sha256_texts(["b", "a"])
    assert hash_inputs([tmp_path / "d", tmp_path / "missing"]) == {str(tmp_path / "d" / "f.txt"):
                                                                   hashlib.sha256(b"abc").hexdigest()}


def test_manifest_records_config_seed_versions_and_inputs(tmp_path):
    (tmp_path / "in.jsonl").write_text("{}\n")
    path = write_manifest(tmp_path / "run", "mine", {"k": 5}, inputs=[tmp_path / "in.jsonl"], seed=7,
                          extra={"note": "x"})
    manifest = json.loads(path.read_text())
    assert (manifest["stage"], manifest["config"], manifest["seed"], manifest["note"]) == ("mine", {"k": 5}, 7, "x")
    assert "python" in manifest["versions"] and list(manifest["inputs"]) == [str(tmp_path / "in.jsonl")]
