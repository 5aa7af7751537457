"""``negmine mine --ray`` on a real two-node Ray cluster on loopback: the same mined.jsonl bytes and the same cache
entries as a one-machine run, also when an encoder actor is killed mid-run; the cluster is stopped at the end.

The cluster: ``ray start --head --block`` and ``ray start --address … --block`` (one CPU and a memory cap each),
run as child processes of this test so they can be stopped by their own ids (``--block`` makes each ``ray start``
stop its node's processes when terminated); any process left with the cluster's temporary folder on its command line
is killed by id too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from negmine.testing import beir_sample, local_ray_cluster

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
N_QUERIES, N_DOCS = 24, 360


def scifact_sample(src: Path, out: Path) -> Path:
    """A small BEIR folder: the first train queries, their positives and the first other documents."""
    return beir_sample(src, out, n_queries=N_QUERIES, n_docs=N_DOCS)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """(address, env, pid folder) of a two-node cluster; stopped (by process id) even when a test fails."""
    pid_dir = tmp_path_factory.mktemp("actor-pids")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEGMINE_RAY_PID_DIR": str(pid_dir), "RAY_USAGE_STATS_ENABLED": "0",
           "NEGMINE_RAY_SHIP_CODE": "0", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    options = ["--num-cpus", "1", "--memory", str(2 * 1024**3), "--object-store-memory", str(150 * 1024**2)]
    with local_ray_cluster(env, node_options=options, stop_timeout=30) as (address, _):
        yield address, env, pid_dir


def mine_args(data: Path, model: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "negmine", "mine", "--retriever", str(model), "--data", str(data), "--split",
            "train", "--range", "0:30", "--num-negatives", "3", "--out", str(out), "--cache-dir", str(cache), *extra]


def entries(cache: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in cache.glob("*/*/embeddings.npy")}


def test_mine_on_a_two_node_cluster_is_byte_identical_to_one_machine(ray_cluster, tmp_path, scifact_dir,
                                                                     minilm_path):
    address, env, pid_dir = ray_cluster
    data = scifact_sample(scifact_dir, tmp_path / "sample")
    local = subprocess.run(mine_args(data, minilm_path, tmp_path / "local", tmp_path / "cache-local"), env=env,
                           capture_output=True, text=True, timeout=900)
    assert local.returncode == 0, local.stderr[-3000:]
    expected = (tmp_path / "local" / "mined.jsonl").read_bytes()
    assert expected.count(b"\n") >= N_QUERIES // 2

    # a distributed run in which an encoder actor is killed mid-run: its block is retried, the bytes do not change
    cache = tmp_path / "cache-ray"
    proc = subprocess.Popen(mine_args(data, minilm_path, tmp_path / "ray", cache, "--ray", address), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        pids = sorted(int(p.name) for p in pid_dir.glob("*")) if pid_dir.is_dir() else []
        if pids:  # an encoder actor started: kill it while the corpus is being encoded
            time.sleep(1.0)
            seen = len(list(pid_dir.iterdir()))
            assert not list(cache.glob("*/*/embeddings.npy")), "the corpus was encoded before the kill"
            for pid in pids:  # the first actor still alive (a file may outlive its process: an earlier test's actor)
                try:
                    if b"ray::" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                        continue  # the pid was reused by another process
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, FileNotFoundError):
                    continue
                killed = pid
                break
        time.sleep(0.2)
    _, stderr = proc.communicate(timeout=900)
    assert killed is not None, "no encoder actor was seen to kill"
    assert proc.returncode == 0, stderr[-3000:]
    assert (tmp_path / "ray" / "mined.jsonl").read_bytes() == expected
    assert len(list(pid_dir.iterdir())) > seen  # a replacement actor started after the kill
    assert entries(cache) == entries(tmp_path / "cache-local") != {}  # same keys, same vectors
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["config"]["ray_address"] == address
    assert manifest["config"]["retriever_config"]["index"]["type"] == "ray-sharded-exact"
    assert manifest["config"]["retriever_config"]["index"]["num_shards"] == 2

    # the local run resumes from the distributed run's cache: nothing re-encoded, the same bytes
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache-ray").rglob("*.npy")}
    again = subprocess.run(mine_args(data, minilm_path, tmp_path / "local2", tmp_path / "cache-ray"), env=env,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "local2" / "mined.jsonl").read_bytes() == expected
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache-ray").rglob("*.npy")} == before

    # negmine eval --ray (search sharded on the cluster) gives the local run; index build --ray reuses the cache
    runs = {}
    for name, extra in (("eval-local", []), ("eval-ray", ["--ray", address])):
        done = subprocess.run([sys.executable, "-m", "negmine", "eval", "--model", str(minilm_path), "--data",
                               str(data), "--split", "train", "--out", str(tmp_path / name), "--no-progress", *extra],
                              env={**env, "NEGMINE_CACHE": str(tmp_path / "cache-ray")}, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = (tmp_path / name / "run.trec").read_bytes()
    assert runs["eval-ray"] == runs["eval-local"] != b""
    built = subprocess.run([sys.executable, "-m", "negmine", "index", "build", "--retriever", str(minilm_path),
                            "--data", str(data), "--split", "train", "--out", str(tmp_path / "index"),
                            "--cache-dir", str(tmp_path / "cache-ray"), "--ray", address], env=env,
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    assert json.loads((tmp_path / "index" / "negmine_index.json").read_text())["ntotal"] >= N_DOCS
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache-ray").rglob("*.npy")} == before
