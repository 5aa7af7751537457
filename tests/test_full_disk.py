"""A full disk: a write that fails with ENOSPC leaves no half-written file in place (the previous version, or none)
and ends in a one-line error naming the file.

Two ways to fill a disk: a real 256 KiB tmpfs mounted under the test's folder (needs root, as in CI's container;
skipped where mount is refused), and an ``OSError(ENOSPC)`` injected at the write (always runs).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from negmine.io import atomic_open, write_json, write_jsonl


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs at ``tmp_path/disk``, unmounted at teardown."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                                 capture_output=True, text=True, timeout=30)
    except OSError as err:
        pytest.skip(f"cannot run mount: {err}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=30)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until at most ``leave`` bytes are free."""
    with open(disk / "filler", "wb") as handle:
        try:
            while True:
                stat = os.statvfs(disk)
                free = stat.f_bavail * stat.f_frsize
                if free <= leave:
                    break
                handle.write(b"\0" * min(4096, free - leave))
                handle.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def test_atomic_write_into_a_full_tmpfs_keeps_the_old_file(small_disk):
    path = small_disk / "runs" / "mined.jsonl"
    write_jsonl(path, [{"query_id": "q1", "text": "the previous run"}])
    before = path.read_bytes()
    fill(small_disk, leave=8192)
    rows = ({"query_id": f"q{i}", "text": "x" * 1000} for i in range(1000))  # ~1 MB: does not fit
    with pytest.raises(OSError) as info:
        write_jsonl(path, rows)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path) and info.value.__notes__ == ["not written; any previous version is kept"]
    assert path.read_bytes() == before
    assert leftovers(small_disk) == []


def test_negmine_mine_on_a_full_disk_is_one_line(small_disk, tmp_path):
    """The whole stage: `negmine mine` writing into a full disk exits 2 with one line; nothing half-written."""
    from negmine.testing import write_toy_beir

    beir = write_toy_beir(tmp_path / "beir")
    out = small_disk / "mined"
    fill(small_disk, leave=4096)
    result = subprocess.run([sys.executable, "-c", "from negmine.cli import main; main()", "mine", "--retriever",
                             "hashing", "--data", str(beir), "--no-cache", "--range", "0:8", "--num-negatives", "2",
                             "--too-few", "pad", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: No space left on device (ENOSPC): {out}/"), result.stderr
    assert error.endswith(" (not written; any previous version is kept)"), result.stderr
    assert leftovers(small_disk) == []
    for file in out.rglob("*"):  # whatever was written before the disk filled up is complete
        if file.suffix == ".jsonl":
            for line in file.read_text().splitlines():
                json.loads(line)
        elif file.suffix == ".json":
            json.loads(file.read_text())


@pytest.mark.parametrize("at", ["write", "fsync"])
def test_injected_enospc_leaves_the_previous_file(tmp_path, monkeypatch, at):
    path = tmp_path / "summary.json"
    write_json(path, {"run": 1})
    if at == "fsync":
        def no_space(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", no_space)
        with pytest.raises(OSError) as info:
            write_json(path, {"run": 2, "rows": list(range(1000))})
    else:
        with pytest.raises(OSError) as info, atomic_open(path) as handle:
            handle.write('{"run": 2, "ro')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert json.loads(path.read_text()) == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_the_cli_prints_an_os_error_on_one_line():
    from negmine.cli import describe_os_error

    err = OSError(errno.ENOSPC, "No space left on device", "runs/x.json")
    err.add_note("not written; any previous version is kept")
    assert describe_os_error(err) == ("No space left on device (ENOSPC): runs/x.json (not written; any previous "
                                      "version is kept)")
    assert describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/root/x")) == (
        "Permission denied (EACCES): /root/x")
