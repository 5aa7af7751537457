"""Offline fixtures for tests and documentation examples: a toy BEIR-style dataset."""

from __future__ import annotations

from negmine.data import RetrievalData

_DOCS = {
    "d1": ("Hard negatives", "Hard negative mining selects passages that look relevant but are not."),
    "d2": ("FAISS", "FAISS is a library for efficient similarity search of dense vectors."),
    "d3": ("Contrastive learning", "InfoNCE contrasts a positive against many negatives with a temperature."),
    "d4": ("", "Sourdough bread needs flour, water, salt and a starter."),
    "d5": ("", "A recipe for tomato soup with basil and garlic."),
    "d6": ("Dense retrieval", "Dense retrievers embed queries and passages into one vector space."),
    "d7": ("False negatives", "Unlabeled relevant passages mined as negatives are false negatives."),
    "d8": ("", "The marathon runner trained for months before the race."),
    "d9": ("Cross-encoders", "A cross-encoder scores a query and a passage jointly and reranks candidates."),
    "d10": ("Hard negatives", "Hard negative mining selects passages that look relevant but are not."),  # copy of d1
    "d11": ("BM25", "BM25 is a lexical ranking function based on term frequencies."),
    "d12": ("", "Mountain hiking trails with scenic views over the valley."),
}
_QUERIES = {
    "q1": "what is hard negative mining",
    "q2": "library for similarity search of vectors",
    "q3": "contrastive loss with negatives and temperature",
    "q4": "how to bake bread",
    "q5": "what are false negatives in retrieval training",
    "q6": "dense retrieval of passages",
}
_QRELS = {
    "q1": {"d1": 1},
    "q2": {"d2": 1},
    "q3": {"d3": 1},
    "q4": {"d4": 1},
    "q5": {"d7": 1, "d1": 1},
    "q6": {"d6": 1},
}


def toy_data() -> RetrievalData:
    """12 documents (one an exact copy of another), 6 queries, one with two positives."""
    corpus = {d: {"title": t, "text": x} for d, (t, x) in _DOCS.items()}
    return RetrievalData(corpus, dict(_QUERIES), {q: dict(r) for q, r in _QRELS.items()}, name="toy", split="train")


def write_toy_beir(folder, split: str = "train"):
    """:func:`toy_data` written as a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/SPLIT.tsv``), for
    tests of what reads data from disk. Returns the folder as a ``Path``."""
    from pathlib import Path

    from negmine.io import write_jsonl

    data, folder = toy_data(), Path(folder)
    write_jsonl(folder / "corpus.jsonl", ({"_id": d, **doc} for d, doc in data.corpus.items()))
    write_jsonl(folder / "queries.jsonl", ({"_id": q, "text": t} for q, t in data.queries.items()))
    _write_qrels(folder, split, ((q, d, g) for q, docs in data.qrels.items() for d, g in docs.items()))
    return folder


def _write_qrels(folder, split: str, rows) -> None:
    """``folder/qrels/SPLIT.tsv`` in BEIR's layout: a header, then one ``query, document, grade`` row per line."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "qrels" / f"{split}.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")


def tiny_cross_encoder(folder, seed: int = 0):
    """A randomly initialised 2-layer BERT cross-encoder with a word-level tokenizer, built offline in ~1 s.

    Its scores are meaningless but deterministic: it exercises the real ``CrossEncoder`` code path in tests.
    """
    import json
    from pathlib import Path

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = Path(folder)
    words = sorted({w for _, (t, x) in _DOCS.items() for w in f"{t} {x}".lower().split()}
                   | {w for q in _QUERIES.values() for w in q.lower().split()})
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    (folder / "negmine_tiny.json").write_text(json.dumps({"seed": seed}))
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(folder), max_length=128)


def importorskip(name: str, reason: str | None = None):
    """``pytest.importorskip`` for a test module's optional dependency, except where every extra is expected.

    A module-level ``pytest.importorskip`` makes a whole test file vanish from a run where the package is missing,
    silently. Under CI (``CI`` set, as GitHub Actions does) or with ``NEGMINE_REQUIRE_OPTIONAL=1`` the import is
    required and a missing package fails the run; on a developer machine it still skips.
    """
    import importlib
    import os

    import pytest

    strict = os.environ.get("NEGMINE_REQUIRE_OPTIONAL", "").lower() in ("1", "true", "yes") or bool(
        os.environ.get("CI"))
    if strict:
        try:
            return importlib.import_module(name)
        except ImportError as err:
            pytest.fail(f"{name} is required here (CI / NEGMINE_REQUIRE_OPTIONAL) but cannot be imported: {err}",
                        pytrace=False)
    return pytest.importorskip(name, reason=reason)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (for test servers and clusters)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TableEncoder:
    """An encoder that serves precomputed unit vectors keyed by text, so tests control every score."""

    similarity = "cosine"

    def __init__(self, table):
        self.table = table

    def encode_queries(self, texts, *, batch_size=32, show_progress_bar=False):
        import numpy as np

        return np.stack([self.table[t] for t in texts])

    encode_corpus = encode_queries

    def fingerprint(self):
        return {"encoder": "table", "id": id(self)}


def pids_with(marker: str) -> list[int]:
    """Ids of this machine's processes (other than this one) whose command line contains ``marker``."""
    import contextlib
    import os
    from pathlib import Path

    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
    return pids


def wait_for_ray_nodes(address: str, n: int, env: dict[str, str], timeout: float = 300) -> None:
    """Block until the Ray cluster at ``address`` has ``n`` live nodes (asked from a fresh process each time)."""
    import contextlib
    import subprocess
    import sys
    import time

    code = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
            f"print(sum(1 for x in ray.nodes() if x['Alive']))")
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            last = out.stderr[-2000:]
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {n} node(s): {last}")


def local_ray_cluster(env: dict[str, str], *, node_options: list[str], prefix: str = "nmray",
                      stop_timeout: float = 60):
    """A context manager: a two-node Ray cluster on loopback, yielding ``(address, temp folder)``.

    ``ray start --head --block`` and ``ray start --address ... --block`` (``node_options`` added to both, e.g.
    ``--num-cpus 1``) run as child processes so they can be stopped by their own ids (``--block`` makes each stop its
    node's processes when terminated); any process left with the cluster's temporary folder on its command line is
    killed by id too. Used by the Ray tests and ``benchmarks/pipeline_scaling.py``."""
    import contextlib
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    @contextlib.contextmanager
    def cluster():
        temp = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # short: Ray's socket paths have a length limit
        address = f"127.0.0.1:{free_port()}"
        ray_bin = str(Path(sys.executable).parent / "ray")
        common = [*node_options, "--disable-usage-stats", "--block"]
        nodes: list[subprocess.Popen] = []
        quiet = dict(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            nodes.append(subprocess.Popen([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port",
                                           address.rsplit(":", 1)[1], "--include-dashboard=false", "--temp-dir",
                                           str(temp), *common], **quiet))
            wait_for_ray_nodes(address, 1, env)
            nodes.append(subprocess.Popen([ray_bin, "start", "--address", address, "--node-ip-address", "127.0.0.1",
                                           *common], **quiet))
            wait_for_ray_nodes(address, 2, env)
            yield address, temp
        finally:
            for node in reversed(nodes):
                node.send_signal(signal.SIGTERM)
            for node in reversed(nodes):
                try:
                    node.wait(timeout=stop_timeout)
                except subprocess.TimeoutExpired:
                    node.kill()
            for pid in pids_with(str(temp)):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(temp, ignore_errors=True)

    return cluster()


def beir_sample(src, out, *, n_queries: int, n_docs: int, split: str = "train", edit=None):
    """A small BEIR folder cut from ``src`` (``corpus.jsonl.gz``, ``queries.jsonl.gz``, ``qrels/SPLIT.tsv``): the
    first ``n_queries`` queries of the split, their positives and the first ``n_docs`` other documents.

    ``edit(docs, rows, queries)`` may change the document dicts and qrels rows (``[query, doc, grade]`` strings) in
    place before they are written. Returns ``out``."""
    import gzip
    import json
    from pathlib import Path

    src, out = Path(src), Path(out)
    qrels = [line.rstrip("\n").split("\t") for line in (src / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]]
    queries = list(dict.fromkeys(q for q, _, _ in qrels))[:n_queries]
    rows = [r for r in qrels if r[0] in queries]
    positives = {d for _, d, _ in rows}
    docs = []
    with gzip.open(src / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["_id"] in positives or len(docs) < n_docs:
                docs.append(doc)
    if edit is not None:
        edit(docs, rows, queries)
    out.mkdir(parents=True)
    (out / "corpus.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs),
                                      encoding="utf-8")
    with gzip.open(src / "queries.jsonl.gz", "rt", encoding="utf-8") as handle:
        (out / "queries.jsonl").write_text("".join(line for line in handle if json.loads(line)["_id"] in queries),
                                           encoding="utf-8")
    _write_qrels(out, split, rows)
    return out
