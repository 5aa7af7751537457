"""Real end-to-end mining: SciFact train (809 queries, 5,183 docs) with the bundled all-MiniLM-L6-v2."""

import json
from unittest import mock

import pytest
from typer.testing import CliRunner

from negmine.cli import app
from negmine.data import load_data
from negmine.mining import read_mined


def run_mine(scifact_dir, out, *options):
    """``negmine mine`` on SciFact train with the bundled MiniLM; returns the output folder."""
    args = ["mine", "--retriever", "minilm", "--data", str(scifact_dir), "--split", "train", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def mined(tmp_path_factory, scifact_dir):
    return run_mine(scifact_dir, tmp_path_factory.mktemp("scifact-mine"), "--range", "0:50", "--num-negatives", "5",
                    "--strategy", "perc-pos", "--percentage", "0.95", "--output-scores")


def test_no_negative_is_a_positive_or_a_copy_of_one(mined, scifact_dir):
    data = load_data(scifact_dir, "train")
    records = read_mined(mined)
    assert 600 < len(records) <= 809
    for r in records:
        qrels = data.qrels[r.query_id]
        assert not set(r.negative_ids) & set(qrels)
        assert not {data.doc_text(p) for p in qrels} & set(r.negatives)
        assert len(set(r.negative_ids)) == len(r.negative_ids) >= 5
        for p, score in enumerate(r.positive_scores):  # margin reference 'each': TopK-PercPos against each positive
            negatives = [r.negative_scores[i] for i in r.negatives_of(p)]
            assert len(negatives) == (5 if r.has_row(p) else 0)
            assert all(s < score - abs(score) * 0.05 + 1e-6 for s in negatives)


def test_stats_add_up_and_manifest_is_complete(mined):
    stats = json.loads((mined / "stats.json").read_text())
    q, c = stats["queries"], stats["candidates"]
    assert q["total"] == 809 == q["enough_negatives"] + q["too_few"] + sum(q["skipped"].values())
    assert c["retrieved"] == c["padding"] + sum(c["excluded"].values()) + sum(c["filtered"].values()) + c["eligible"]
    assert 800 < c["excluded"]["positive"] <= 919  # positives found in the top-k are excluded, not mined
    records = read_mined(mined)
    assert stats["negatives"]["selected"] == sum(len(r.negative_ids) for r in records)
    rows = (mined / "n-tuple.jsonl").read_text().splitlines()
    written = sum(r.has_row(p) for r in records for p in range(len(r.positives)))
    assert len(rows) == stats["rows"] == stats["pairs"]["written"] == written
    assert len(json.loads(rows[0])["scores"]) == 6
    manifest = json.loads((mined / "manifest.json").read_text())
    assert any(k.endswith("train.tsv") for k in manifest["inputs"]) and manifest["config"]["retriever"] == "minilm"
    assert len(manifest["config"]["retriever_config"]["encoder"]["weights_sha256"]) == 64
    assert (mined / "scores.png").stat().st_size > 1000


def test_remining_with_other_filters_does_not_reencode(mined, scifact_dir, tmp_path):
    from negmine.encoders.st import SentenceTransformerEncoder

    with mock.patch.object(SentenceTransformerEncoder, "_encode", side_effect=AssertionError("re-encoded")):
        run_mine(scifact_dir, tmp_path, "--strategy", "margin-pos", "--margin", "0.1", "--num-negatives", "3",
                 "--sampling", "random", "--seed", "1")
    assert 500 < len(read_mined(tmp_path)) <= 809
