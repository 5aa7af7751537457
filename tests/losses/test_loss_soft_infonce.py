"""Soft-InfoNCE against a loop-based reference; alpha = 0 equals InfoNCE; BM25; gradcheck; validation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import _loss_reference as ref
import pytest
import torch

from negmine.losses import InfoNCE, SoftInfoNCE
from negmine.losses.soft_infonce import bm25_scores, soft_weights


def columns(batch=3, num_columns=4, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g, dtype=torch.float64) for _ in range(num_columns)]


LABELS = torch.tensor([[0.9, 0.7, 0.2, 0.5], [0.8, 0.1, 0.6, 0.3], [0.7, 0.4, 0.4, 0.65]], dtype=torch.float64)


@pytest.mark.parametrize("alpha,beta,t,w_min", [(1.0, 1.0, 1.0, 0.1), (2.0, 1.5, 0.1, 0.0), (0.5, 1.0, 0.05, 0.3)])
def test_matches_loop_reference_with_teacher_scores(alpha, beta, t, w_min):
    emb = columns(num_columns=5)
    loss = SoftInfoNCE(None, estimator="labels", alpha=alpha, beta=beta, t=t, w_min=w_min, temperature=0.1)
    got = loss.compute_loss_from_embeddings(emb, LABELS)
    status = ref.classify(emb)
    weights = ref.soft_weights(status, ref.labels_reference(LABELS, 3, 4), alpha, beta, t, w_min)
    assert any(w != 1.0 for row in weights for w in row)
    torch.testing.assert_close(got, ref.infonce(emb, status, 0.1, weights=weights))


def test_alpha_zero_equals_infonce_exactly():
    emb = columns(num_columns=5, seed=1)
    keys = [torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8]), torch.tensor([9, 3, 10]),
            torch.tensor([11, 12, 13])]
    for kwargs in ({}, {"num_positive_columns": 2, "multi_positive": "sum"}, {"symmetric": True}, {"margin": 0.2}):
        soft = SoftInfoNCE(None, alpha=0.0, **kwargs).compute_loss_from_embeddings(emb, LABELS, text_keys=keys)
        plain = InfoNCE(None, **kwargs).compute_loss_from_embeddings(emb, LABELS, text_keys=keys)
        assert torch.equal(soft, plain), kwargs


def test_more_relevant_negatives_get_lower_weights_and_weights_average_one():
    relevance = torch.tensor([[math.nan, 0.1, 0.5, 0.9]], dtype=torch.float64)
    negative = torch.tensor([[False, True, True, True]])
    w = soft_weights(relevance, negative, alpha=1.0, beta=1.0, t=1.0, w_min=0.0)
    assert w[0, 0] == 1.0
    assert w[0, 1] > w[0, 2] > w[0, 3]
    torch.testing.assert_close(w[0, 1:].mean(), torch.tensor(1.0, dtype=torch.float64))


def test_unknown_in_batch_estimates_take_the_row_minimum():
    emb = columns(batch=2, num_columns=3, seed=2)
    labels = torch.tensor([[0.9, 0.6], [0.8, 0.2]], dtype=torch.float64)
    loss = SoftInfoNCE(None, estimator="labels", alpha=1.0)
    batch = loss.build_batch(emb, labels)
    w = soft_weights(batch.reference, batch.negative, 1.0, 1.0, 1.0, 0.1)
    # row 0: own negative 0.6 known; in-batch candidates (row 1's positive and negative) take 0.6 as well
    torch.testing.assert_close(w[0, [1, 2, 3]], torch.ones(3, dtype=torch.float64))


def test_frozen_model_estimator_via_reference_embeddings():
    emb = columns(num_columns=3, seed=3)
    frozen = columns(num_columns=3, seed=4)
    loss = SoftInfoNCE(None, estimator="labels", alpha=1.5, beta=1.0, t=0.5)
    got = loss.compute_loss_from_embeddings(emb, reference_embeddings=frozen)
    relevance = [[float(ref.cos(frozen[0][i], v)) for _, _, v in ref.candidates(frozen)] for i in range(3)]
    status = ref.classify(emb)
    weights = ref.soft_weights(status, relevance, 1.5, 1.0, 0.5, 0.1)
    torch.testing.assert_close(got, ref.infonce(emb, status, 0.05, weights=weights))


def test_bm25_matches_hand_computation():
    docs = [[1, 2, 2], [2, 3], [4]]
    queries = [[2], [1, 4]]
    got = bm25_scores(queries, docs, k1=1.2, b=0.75)
    avg = 2.0

    def idf(df):
        return math.log(1 + (3 - df + 0.5) / (df + 0.5))

    def term(tf, length):
        return tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avg))

    assert got[0, 0].item() == pytest.approx(idf(2) * term(2, 3))
    assert got[0, 1].item() == pytest.approx(idf(2) * term(1, 2))
    assert got[0, 2].item() == 0.0
    assert got[1, 0].item() == pytest.approx(idf(1) * term(1, 3))
    assert got[1, 2].item() == pytest.approx(idf(1) * term(1, 1))


def test_bm25_estimator_from_token_features():
    model = SimpleNamespace(tokenizer=SimpleNamespace(all_special_ids=[0, 101, 102]))
    loss = SoftInfoNCE(model, estimator="bm25", alpha=1.0)
    features = [{"input_ids": torch.tensor([[101, 5, 6, 102], [101, 7, 102, 0]]),
                 "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])},
                {"input_ids": torch.tensor([[101, 5, 5, 102], [101, 8, 102, 0]]),
                 "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}]
    scores = loss.extra_inputs(features)["reference_scores"]
    assert scores.shape == (2, 2)
    assert scores[0, 0] > 0 and scores[0, 1] == 0 and scores[1, 0] == 0 and scores[1, 1] == 0  # specials ignored


def test_beta_must_exceed_alpha_over_n():
    emb = columns(batch=2, num_columns=2)
    with pytest.raises(ValueError, match=r"beta=0.2 must exceed alpha / N"):
        SoftInfoNCE(None, alpha=1.0, beta=0.2).compute_loss_from_embeddings(emb, torch.zeros(2, 1))


def test_labels_estimator_needs_scores():
    with pytest.raises(ValueError, match="estimator='labels' has nothing to estimate from"):
        SoftInfoNCE(None).compute_loss_from_embeddings(columns())


def test_gradcheck_float64():
    emb = [e.clone().requires_grad_(True) for e in columns(batch=2, num_columns=3, dim=3, seed=5)]
    labels = torch.tensor([[0.9, 0.3], [0.8, 0.7]], dtype=torch.float64)
    loss = SoftInfoNCE(None, alpha=1.0, beta=1.0, t=0.5, temperature=0.5)
    assert torch.autograd.gradcheck(lambda *e: loss.compute_loss_from_embeddings(list(e), labels), emb)


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": -1.0}, "alpha=-1.0"), ({"beta": 0.0}, "beta=0.0"), ({"t": 0}, "t=0"), ({"w_min": 1.5}, "w_min=1.5"),
    ({"estimator": "tfidf"}, "estimator='tfidf'"), ({"bm25_b": 2.0}, "bm25_b=2.0"),
])
def test_validation_names_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SoftInfoNCE(None, **kwargs)


def test_config_and_citation():
    loss = SoftInfoNCE(None, estimator="bm25", alpha=0.5)
    config = loss.get_config_dict()
    assert config["estimator"] == "bm25" and config["alpha"] == 0.5 and "bm25_k1" in config
    assert "2310.08069" in loss.citation
