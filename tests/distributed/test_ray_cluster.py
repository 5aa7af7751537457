"""``negmine mine --ray`` on a real two-node Ray cluster on loopback: the same mined.jsonl bytes and the same cache
entries as a one-machine run, also when an encoder actor is killed mid-run; the cluster is stopped at the end.

The cluster: ``ray start --head --block`` and ``ray start --address … --block`` (one CPU and a memory cap each),
run as child processes of this test so they can be stopped by their own ids (``--block`` makes each ``ray start``
stop its node's processes when terminated); any process left with the cluster's temporary folder on its command line
is killed by id too."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
N_QUERIES, N_DOCS = 24, 360


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scifact_sample(src: Path, out: Path) -> Path:
    """A small BEIR folder: the first train queries, their positives and the first other documents."""
    qrels = [line.rstrip("\n").split("\t") for line in (src / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    queries = list(dict.fromkeys(q for q, _, _ in qrels))[:N_QUERIES]
    rows = [r for r in qrels if r[0] in queries]
    positives = {d for _, d, _ in rows}
    docs = []
    with gzip.open(src / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["_id"] in positives or len(docs) < N_DOCS:
                docs.append(line)
    out.mkdir(parents=True)
    (out / "corpus.jsonl").write_text("".join(docs))
    with gzip.open(src / "queries.jsonl.gz", "rt", encoding="utf-8") as handle:
        (out / "queries.jsonl").write_text("".join(line for line in handle if json.loads(line)["_id"] in queries))
    (out / "qrels").mkdir()
    (out / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n"
                                                                                     for r in rows))
    return out


def _cluster_pids(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def ray_cluster():
    """(address, env, pid folder) of a two-node cluster; stopped (by process id) even when a test fails."""
    temp = Path(tempfile.mkdtemp(prefix="nmray", dir="/tmp"))  # short: Ray's socket paths have a length limit
    pid_dir = temp / "actor-pids"
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEGMINE_RAY_PID_DIR": str(pid_dir), "RAY_USAGE_STATS_ENABLED": "0",
           "NEGMINE_RAY_SHIP_CODE": "0", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    ray_bin = str(Path(sys.executable).parent / "ray")
    common = ["--num-cpus", "1", "--memory", str(2 * 1024**3), "--object-store-memory", str(150 * 1024**2),
              "--disable-usage-stats", "--block"]
    nodes = []
    try:
        nodes.append(subprocess.Popen([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port",
                                       str(port), "--include-dashboard=false", "--temp-dir", str(temp), *common],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_nodes(address, 1, env)
        nodes.append(subprocess.Popen([ray_bin, "start", "--address", address, "--node-ip-address", "127.0.0.1",
                                       *common], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_nodes(address, 2, env)
        yield address, env, pid_dir
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.kill()
        for pid in _cluster_pids(str(temp)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_nodes(address: str, n: int, env: dict, timeout: float = 300) -> None:
    code = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
            f"print(sum(1 for x in ray.nodes() if x['Alive']))")
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                 timeout=120)
        except subprocess.TimeoutExpired:
            continue
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        last = out.stderr[-2000:]
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {n} node(s): {last}")


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
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
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
