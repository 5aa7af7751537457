"""Golden outputs of ``negmine mine``, ``relabel``, ``train`` and ``eval`` on a small SciFact sample.

``mine``, ``train`` and ``eval`` run through the CLI; ``relabel`` through :func:`relabel_file` (what the CLI calls)
with two judges CI can run offline: a scripted ARHN LLM whose answers and ranking derive from a hash of each passage,
and a tiny random cross-encoder. Every training-file format of ``mine --format`` and the ``train`` rows are hashed too.

The expected digests were computed with the code before the "one home per concept" refactor (issue 19): moving the
mined record, the row builder, index building and the sentence-transformers checks must not change a byte of what
the stages write. Volatile fields (times, absolute paths, manifests) are left out of the comparison; floats that a
neural model computes (the tiny cross-encoder's scores, the trained model's embeddings) and the retrieval scores
of mining are rounded so the digests do not depend on the last bits of a BLAS or of the CPU's vector width.

If a digest changes on purpose (a deliberate change of an output format), recompute it with
``NEGMINE_PRINT_GOLDEN=1 pytest tests/test_refactor_golden.py -s`` and say why in the commit.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from negmine.cli import app

runner = CliRunner()

NUM_QUERIES, NUM_EXTRA_DOCS = 12, 150
# retrieval scores differ in their last bits between CPUs (AVX2 and AVX-512 sum a dot product in another order), so
# every digest over scores rounds them; 3 digits keeps a last-bit difference from crossing a rounding boundary
SCORE_DIGITS = 3

EXPECTED = {
    "mine/mined.jsonl": "baff344e2545b469ae446e2d9ff6cdf4d731c7de77badefc4f5c126a942122bb",
    "mine/n-tuple.jsonl": "fa787532a6644510c46d03b91980351f7ecddde5ef191ba3ab00fce81d64da3f",
    "rows/n-tuple": "8c1b6159578ffca1613ce3140a89998383e64d9323bcbd76f72cf1e67219133e",
    "rows/n-tuple+scores": "fa787532a6644510c46d03b91980351f7ecddde5ef191ba3ab00fce81d64da3f",
    "rows/triplet+scores": "6a9979351127d19533838bc1d27aab042ab71fbf81ca9207d5ef8874347610ec",
    "rows/labeled-pair": "1eb70203b1109e6c514ec93d9bb28283daef447eb9c30b3b70241b01ffa30043",
    "rows/labeled-pair+scores": "ddf6de48ca33c396eb84ca56410c84b522790028c2d7a62401d4549920832c06",
    "rows/labeled-list": "d99e6a79ab51158b9b158c52fc63a32bf6a1d3814b5624fcef41600f1f41be77",
    "rows/flag": "0084fd4282684cac9a5f3afef95e59a0644398659e3d7b1d32ec6cdfbb44392a",
    "train-rows/P2": "fa787532a6644510c46d03b91980351f7ecddde5ef191ba3ab00fce81d64da3f",
    "train-rows/P1-N2-no-scores": "613c2cbb958e2e71dea610ddac28c125a9b0b9084cff79a4cc2b23866ede959c",
    "relabel-oracle/mined.jsonl": "0e0efabac7a8f0c9ee0dc6615a55ef01cdd42048c906a3f8db75f6bdd99f871c",
    "relabel-oracle/judgments.jsonl": "df7e5f4cefee795863af18a14fe061d51f015e4fe19a7b3a4c8ecc1bec032621",
    "relabel-oracle/summary": "03cedd06ce2fb0de5c271b32fdab90edb21eec2516cbbe133f23903d4545d31b",
    "relabel-cross-encoder/mined.jsonl": "baff344e2545b469ae446e2d9ff6cdf4d731c7de77badefc4f5c126a942122bb",
    "relabel-cross-encoder/judgments": "c2bcf2d6c2d01a586251feaed989eecbdf5461b23ae4d7110b5991ad666443fb",
    "train/embeddings": "bfda0bb5e926b51d0e0d9c16be8c074fb4fcd80fa4f4ce41bb53e4bfa1befeb0",
    "eval/metrics": "9dfc95b39a0c5cc4329c50968b717ddb0d432d1d41496908877224b4b62c7c29",
    "eval/run.trec": "1413ca8ab1256da8226da29352e8d951ffe910bd2ebeff0a3307010bbad85854",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> str:
    return sha(path.read_bytes())


def _rounded(obj, digits: int):
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, list):
        return [_rounded(x, digits) for x in obj]
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    return obj


def json_sha(obj, digits: int | None = None) -> str:
    if digits is not None:
        obj = _rounded(obj, digits)
    return sha(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode())


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sample(scifact_dir: Path, tmp_path_factory) -> Path:
    """The first 12 training queries of SciFact, their positives and the first 150 documents, as a BEIR folder."""
    folder = tmp_path_factory.mktemp("golden") / "scifact-sample"
    (folder / "qrels").mkdir(parents=True)
    qrels_lines = (scifact_dir / "qrels" / "train.tsv").read_text().splitlines()
    qrels: dict[str, list[str]] = {}
    for line in qrels_lines[1:]:
        qid, did, _ = line.split("\t")
        if qid not in qrels and len(qrels) == NUM_QUERIES:
            break
        qrels.setdefault(qid, []).append(did)
    wanted = {d for docs in qrels.values() for d in docs}
    with gzip.open(scifact_dir / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle, \
            open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        for i, line in enumerate(handle):
            doc = json.loads(line)
            if i < NUM_EXTRA_DOCS or doc["_id"] in wanted:
                out.write(line if line.endswith("\n") else line + "\n")
    with gzip.open(scifact_dir / "queries.jsonl.gz", "rt", encoding="utf-8") as handle, \
            open(folder / "queries.jsonl", "w", encoding="utf-8") as out:
        for line in handle:
            if json.loads(line)["_id"] in qrels:
                out.write(line if line.endswith("\n") else line + "\n")
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, docs in qrels.items() for d in docs]
    (folder / "qrels" / "train.tsv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def mined_dir(sample: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("golden-mine") / "mine"
    result = runner.invoke(app, ["mine", "--retriever", "hashing", "--data", str(sample), "--split", "train",
                                 "--out", str(out), "--no-cache", "--num-negatives", "4", "--range", "0:30",
                                 "--sampling", "softmax", "--temperature", "0.1", "--seed", "3", "--format",
                                 "n-tuple", "--output-scores"])
    assert result.exit_code == 0, result.output
    return out


def check(actual: dict[str, str]) -> None:
    if os.environ.get("NEGMINE_PRINT_GOLDEN"):
        print(json.dumps(actual, indent=4))
    for key, digest in actual.items():
        assert digest == EXPECTED[key], f"{key}: the output changed ({digest})"


def test_mine_outputs(mined_dir: Path) -> None:
    from negmine.mining import iter_rows, read_mined

    actual = {"mine/mined.jsonl": json_sha(jsonl(mined_dir / "mined.jsonl"), digits=SCORE_DIGITS),
              "mine/n-tuple.jsonl": json_sha(jsonl(mined_dir / "n-tuple.jsonl"), digits=SCORE_DIGITS)}
    records = read_mined(mined_dir)
    assert len(records) == 9 and all(len(r.negatives) == 4 for r in records)  # 3 have too few candidates
    for fmt, scores in [("n-tuple", False), ("n-tuple", True), ("triplet", True), ("labeled-pair", False),
                        ("labeled-pair", True), ("labeled-list", False), ("flag", False)]:
        rows = list(iter_rows(records, fmt, scores))
        actual[f"rows/{fmt}{'+scores' if scores else ''}"] = json_sha(rows, digits=SCORE_DIGITS)
    check(actual)


def test_training_rows(mined_dir: Path) -> None:
    from negmine.training import build_rows, read_records

    records = read_records(mined_dir / "mined.jsonl")
    check({"train-rows/P2": json_sha(build_rows(records, max_positives=2), digits=SCORE_DIGITS),
           "train-rows/P1-N2-no-scores": json_sha(build_rows(records, 1, 2, use_scores=False))})


def _oracle_truth(records: list[dict]) -> dict[str, tuple[float, str | None]]:
    """A deterministic 'judge' for any mined file: relevance and answer derived from a hash of the passage text."""
    truth = {}
    for r in records:
        for text in [*r["positives"], *r["negatives"]]:
            h = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            truth[text] = ((h % 1000) / 1000, " ".join(text.split()[:6]) if h % 3 == 0 else None)
    return truth


def test_relabel_with_a_scripted_llm(mined_dir: Path, tmp_path: Path) -> None:
    from negmine.relabel import relabel_file
    from negmine.relabel.llm import ARHNJudge
    from negmine.relabel.testing import OracleScript, ScriptedChatClient

    records = [json.loads(line) for line in (mined_dir / "mined.jsonl").read_text().splitlines()]
    judge = ARHNJudge(ScriptedChatClient(OracleScript(_oracle_truth(records))), max_passage_words=None)
    summary = relabel_file(mined_dir / "mined.jsonl", judge, tmp_path / "relabel", show_progress_bar=False,
                           chunk_size=5)
    summary = {k: v for k, v in summary.items() if "second" not in k and k != "usage"}
    assert summary["relabeled"] + summary["filtered"] > 0 and summary["kept"] > 0
    check({"relabel-oracle/mined.jsonl": json_sha(jsonl(tmp_path / "relabel" / "mined.jsonl"), digits=SCORE_DIGITS),
           "relabel-oracle/judgments.jsonl": json_sha(jsonl(tmp_path / "relabel" / "judgments.jsonl"),
                                                      digits=SCORE_DIGITS),
           "relabel-oracle/summary": json_sha(summary)})


def test_relabel_with_a_cross_encoder(mined_dir: Path, tmp_path: Path) -> None:
    from negmine.relabel import relabel_file
    from negmine.relabel.cross_encoder import CrossEncoderJudge
    from negmine.testing import tiny_cross_encoder

    judge = CrossEncoderJudge(tiny_cross_encoder(tmp_path / "ce", seed=0), threshold=0.5, device="cpu")
    out = tmp_path / "relabel"
    relabel_file(mined_dir / "mined.jsonl", judge, out, mode="filter", show_progress_bar=False)
    check({"relabel-cross-encoder/mined.jsonl": json_sha(jsonl(out / "mined.jsonl"), digits=SCORE_DIGITS),
           "relabel-cross-encoder/judgments": json_sha(jsonl(out / "judgments.jsonl"), digits=4)})


def test_train_and_eval(mined_dir: Path, sample: Path, minilm_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "train"
    result = runner.invoke(app, ["train", "--data", str(mined_dir / "mined.jsonl"), "--model", str(minilm_path),
                                 "--loss", "infonce", "--out", str(out), "--max-steps", "2", "--batch-size", "4",
                                 "--max-positives", "2", "--save-steps", "0", "--seed", "5", "--max-seq-length", "64"])
    assert result.exit_code == 0, result.output
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(out / "final"), device="cpu")
    texts = ["hard negatives for dense retrieval", "vitamin C prevents scurvy", "a protein folding study"]
    embeddings = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    actual = {"train/embeddings": json_sha(embeddings.round(4).tolist(), digits=4)}

    eval_out = tmp_path / "eval"
    result = runner.invoke(app, ["eval", "--model", "hashing", "--data", str(sample), "--split", "train",
                                 "--out", str(eval_out), "--no-cache", "--no-progress", "--k", "1,10,100"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((eval_out / "metrics.json").read_text())
    metrics = {k: v for k, v in metrics.items() if k not in ("seconds", "cache_hits", "dataset", "data")}
    actual["eval/metrics"] = json_sha(metrics)
    actual["eval/run.trec"] = file_sha(eval_out / "run.trec")
    check(actual)
