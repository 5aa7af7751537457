"""The embedding judge: cosine of a bi-encoder, threshold from the spec or the flag, through the embedding cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from negmine.encoders import EmbeddingCache
from negmine.encoders.hashing import HashingEncoder
from negmine.errors import ConfigError
from negmine.relabel.base import Label
from negmine.relabel.embedding import EmbeddingJudge
from negmine.relabel.factory import JudgeOptions, load_judge, split_threshold

QUERY = "hard negative mining with faiss"
PASSAGES = ["mining hard negatives with faiss", "hard negatives", "a recipe for tomato soup"]


def _cosines() -> np.ndarray:
    enc = HashingEncoder()
    q = enc.encode_queries([QUERY])[0]
    d = enc.encode_corpus(PASSAGES)
    return (d @ q) / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))


def test_scores_are_cosines_and_the_threshold_labels_them(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    expected = _cosines()
    assert expected[0] > expected[1] > expected[2] >= 0  # a real ordering to check
    threshold = float((expected[0] + expected[1]) / 2)
    judge = EmbeddingJudge("hashing", threshold=threshold, cache=cache)
    judgments = judge.judge(QUERY, PASSAGES, num_positives=1)
    np.testing.assert_allclose([j.score for j in judgments], expected, rtol=1e-6)
    assert [j.label for j in judgments] == [Label.POSITIVE, Label.NEGATIVE, Label.NEGATIVE]
    assert [j.rank for j in judgments] == [0, 1, 2]
    assert cache.encoded == 1 + len(PASSAGES)  # through the cache: a second judge encodes nothing
    again = EmbeddingJudge("hashing", threshold=threshold, cache=cache)
    np.testing.assert_allclose(again.score_pairs([(QUERY, p) for p in PASSAGES]), expected, rtol=1e-6)
    assert cache.encoded == 1 + len(PASSAGES)


def test_spec_threshold_overrides_the_flag():
    assert split_threshold("minilm@0.6", 0.5) == ("minilm", 0.6)
    assert split_threshold("minilm", 0.5) == ("minilm", 0.5)
    with pytest.raises(ConfigError, match="threshold"):
        split_threshold("minilm@high", 0.5)
    options = JudgeOptions(threshold=0.2, no_embedding_cache=True)
    assert load_judge("embedding:hashing@0.7", options=options).threshold == 0.7
    judge = load_judge("embedding:hashing", options=options)
    assert judge.threshold == 0.2 and judge.cache is None and judge.name == "embedding:hashing"


def test_cascade_with_an_embedding_cheap_judge(tmp_path):
    """The cheap stage clears what scores below clear_below; only the rest reaches the expensive judge."""
    seen = []

    class Expensive:
        name = "expensive"

        def get_config_dict(self):
            return {}

        def judge_many(self, items):
            from negmine.relabel.llm import scores_to_judgments

            seen.extend(p for _, passages, _ in items for p in passages)
            return [scores_to_judgments([0.9] * len(p), 0.5, None, self.name) for _, p, _ in items]

    from negmine.relabel.cascade import CascadeJudge

    cos = _cosines()
    cheap = EmbeddingJudge("hashing", threshold=0.5)
    cascade = CascadeJudge(cheap, Expensive(), clear_below=float((cos[1] + cos[2]) / 2))
    judgments = cascade.judge(QUERY, PASSAGES, num_positives=1)
    assert seen == PASSAGES[:2]  # the soup passage was cleared
    assert judgments[2].extra["cleared"] is True and judgments[2].label == Label.NEGATIVE


def test_relabel_cli_with_an_embedding_judge(tmp_path):
    from typer.testing import CliRunner

    from negmine.cli import app

    record = {
        "query_id": "q",
        "query": QUERY,
        "positive_ids": ["p"],
        "positives": [PASSAGES[0]],
        "positive_scores": [0.9],
        "negative_ids": ["n1", "n2"],
        "negatives": PASSAGES[1:],
        "negative_scores": [0.5, 0.1],
    }
    mined = tmp_path / "mined.jsonl"
    mined.write_text(json.dumps(record) + "\n")
    cos = _cosines()
    result = CliRunner().invoke(
        app,
        [
            "relabel",
            "--mined",
            str(mined),
            "--judge",
            f"embedding:hashing@{(cos[1] + cos[2]) / 2}",
            "--mode",
            "filter",
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "out" / "mined.jsonl").read_text().splitlines()]
    assert out[0]["negative_ids"] == ["n2"]  # "hard negatives" scores above the threshold: filtered
