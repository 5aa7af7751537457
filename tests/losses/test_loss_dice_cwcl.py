"""Dice and CWCL against loop-based references; CWCL one-hot equals InfoNCE; gradcheck; validation."""

from __future__ import annotations

import math

import _loss_reference as ref
import pytest
import torch

from negmine.losses import CWCL, Dice, InfoNCE


def columns(batch=3, num_columns=4, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g, dtype=torch.float64) for _ in range(num_columns)]


KEYS = [torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 4, 8]), torch.tensor([9, 10, 6])]


# ---- Dice -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha,gamma,square",
                         [(0.0, 1.0, True), (0.01, 1.0, True), (1.0, 0.5, False), (2.0, 0.0, True)])
def test_dice_matches_loop_reference_multi_hot(alpha, gamma, square):
    emb = columns()
    loss = Dice(None, alpha=alpha, gamma=gamma, square_denominator=square, temperature=0.5, num_positive_columns=2)
    got = loss.compute_loss_from_embeddings(emb, text_keys=KEYS)
    status = ref.classify(emb, num_pos=2, keys=KEYS)
    assert [row.count("pos") for row in status] == [2, 1, 2]  # row 1's second positive repeats its first
    torch.testing.assert_close(got, ref.dice(emb, status, 0.5, alpha, gamma, square))


def test_dice_plus_infonce():
    emb = columns(seed=1)
    combined = Dice(None, alpha=0.1, gamma=1.0, infonce_weight=1.0, dice_weight=0.3, num_positive_columns=2)
    got = combined.compute_loss_from_embeddings(emb, text_keys=KEYS)
    status = ref.classify(emb, num_pos=2, keys=KEYS)
    expected = ref.infonce(emb, status, 0.05) + 0.3 * ref.dice(emb, status, 0.05, 0.1, 1.0)
    torch.testing.assert_close(got, expected)


def test_dice_decreases_as_the_positive_wins():
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    neg = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    values = [Dice(None, temperature=0.5).compute_loss_from_embeddings([q, torch.tensor([[1.0, x]]).double(), neg])
              for x in (2.0, 1.0, 0.0)]
    assert values[0] > values[1] > values[2]


def test_dice_gradcheck_float64():
    emb = [e.clone().requires_grad_(True) for e in columns(batch=2, num_columns=3, dim=3, seed=2)]
    loss = Dice(None, alpha=0.5, gamma=1.0, temperature=0.5, infonce_weight=1.0)
    assert torch.autograd.gradcheck(lambda *e: loss.compute_loss_from_embeddings(list(e)), emb)


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": -0.5}, "alpha=-0.5"), ({"gamma": -1}, "gamma=-1"), ({"dice_weight": -1.0}, "dice_weight=-1.0"),
    ({"infonce_weight": 0.0, "dice_weight": 0.0}, "infonce_weight=0 and dice_weight=0"),
])
def test_dice_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Dice(None, **kwargs)


# ---- CWCL -----------------------------------------------------------------------------------------------------------

LABELS = torch.tensor([[0.9, 0.5, 0.1], [0.8, 0.6, -0.2], [0.7, 0.3, 0.65]], dtype=torch.float64)


@pytest.mark.parametrize("power,threshold,rescale", [(1.0, 0.0, True), (3.0, 0.4, True), (1.0, 0.2, False)])
def test_cwcl_matches_loop_reference_with_teacher_scores(power, threshold, rescale):
    emb = columns()
    loss = CWCL(None, reference="labels", power=power, threshold=threshold, rescale=rescale, temperature=0.2)
    got = loss.compute_loss_from_embeddings(emb, LABELS)
    status = ref.classify(emb)
    expected = ref.cwcl(emb, status, 0.2, ref.labels_reference(LABELS, 3, 3), power, threshold, rescale)
    torch.testing.assert_close(got, expected)


def test_cwcl_with_reference_embeddings_uses_positive_to_candidate_similarity():
    emb = columns(seed=3)
    frozen = columns(seed=4)
    got = CWCL(None, reference="labels", power=2.0).compute_loss_from_embeddings(emb, reference_embeddings=frozen)
    # with reference embeddings but reference="labels", the q-c cosine of the frozen model is the raw score
    raw = [[float(ref.cos(frozen[0][i], v)) for _, _, v in ref.candidates(frozen)] for i in range(3)]
    torch.testing.assert_close(got, ref.cwcl(emb, ref.classify(emb), 0.05, raw, 2.0))
    model_ref = CWCL(None, reference=torch.nn.Linear(1, 1), power=2.0)
    got_model = model_ref.compute_loss_from_embeddings(emb, reference_embeddings=frozen)
    raw_dd = [[float(ref.cos(frozen[1][i], v)) for _, _, v in ref.candidates(frozen)] for i in range(3)]
    torch.testing.assert_close(got_model, ref.cwcl(emb, ref.classify(emb), 0.05, raw_dd, 2.0))


def test_a_reference_module_reaches_forward():
    """A frozen reference model is an nn.Module: forward must see it (a class attribute once shadowed it)."""
    from negmine.losses import SoftInfoNCE

    reference = torch.nn.Linear(1, 1)
    assert CWCL(None, reference=reference).reference_model is reference
    assert InfoNCE(None, guide=reference).reference_model is reference
    assert SoftInfoNCE(None, estimator=reference).reference_model is reference
    assert CWCL(None).reference_model is None and InfoNCE(None).reference_model is None


def test_cwcl_one_hot_equals_infonce():
    emb = columns(seed=5)
    keys = [torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 3]), torch.tensor([9, 10, 11])]
    for kwargs in ({}, {"margin": 0.05}):
        one_hot = CWCL(None, threshold=1.0, **kwargs).compute_loss_from_embeddings(emb, LABELS, text_keys=keys)
        plain = InfoNCE(None, **kwargs).compute_loss_from_embeddings(emb, LABELS, text_keys=keys)
        torch.testing.assert_close(one_hot, plain, rtol=0, atol=1e-12)
    all_zero = torch.full_like(LABELS, -1.0)
    all_zero[:, 0] = 1.0
    torch.testing.assert_close(CWCL(None).compute_loss_from_embeddings(emb, all_zero),
                               InfoNCE(None).compute_loss_from_embeddings(emb), rtol=0, atol=1e-12)


def test_cwcl_several_positives_uniform_target():
    emb = columns(num_columns=4, seed=6)
    got = CWCL(None, threshold=1.0, num_positive_columns=2).compute_loss_from_embeddings(emb, text_keys=KEYS,
                                                                                         labels=torch.zeros(3, 3))
    status = ref.classify(emb, num_pos=2, keys=KEYS)
    s = ref.logits(emb, 0.05)
    expected = 0.0
    for i, row in enumerate(status):
        members = [j for j, st in enumerate(row) if st != "out"]
        log_z = torch.logsumexp(torch.stack([s[i][j] for j in members]), 0)
        pos = [j for j, st in enumerate(row) if st == "pos"]
        expected = expected - sum(s[i][j] - log_z for j in pos) / len(pos)
    torch.testing.assert_close(got, expected / 3)


def test_cwcl_gradcheck_float64():
    emb = [e.clone().requires_grad_(True) for e in columns(batch=2, num_columns=3, dim=3, seed=7)]
    labels = torch.tensor([[0.9, 0.4], [0.7, math.nan]], dtype=torch.float64)
    loss = CWCL(None, temperature=0.5)
    assert torch.autograd.gradcheck(lambda *e: loss.compute_loss_from_embeddings(list(e), labels), emb)


@pytest.mark.parametrize("kwargs,match", [
    ({"power": 0.0}, "power=0.0"), ({"threshold": 1.5}, "threshold=1.5"), ({"reference": "bm25"}, "reference='bm25'"),
])
def test_cwcl_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CWCL(None, **kwargs)


def test_cwcl_needs_a_reference():
    with pytest.raises(ValueError, match="reference='labels' needs the teacher scores"):
        CWCL(None).compute_loss_from_embeddings(columns())


def test_configs_and_citations():
    assert Dice(None, alpha=0.2).get_config_dict()["alpha"] == 0.2
    assert "1911.02855" in Dice(None).citation
    assert CWCL(None, power=2.0).get_config_dict()["power"] == 2.0
    assert "2309.14580" in CWCL(None).citation
