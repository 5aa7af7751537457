"""ListwiseDistillation and MarginMSE against loop-based float64 references and sentence-transformers'
DistillKLDivLoss / MarginMSELoss; reduction to the plain case; masks; multi-positive rows; gradcheck; validation."""

from __future__ import annotations

import math

import _loss_reference as ref
import pytest
import torch

from negmine.losses import LOSSES, InfoNCE, ListwiseDistillation, MarginMSE


def columns(batch=3, num_columns=4, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g, dtype=torch.float64) for _ in range(num_columns)]


LABELS = torch.tensor([[0.9, 0.7, 0.2, 0.5], [0.8, 0.1, 0.6, 0.3], [0.7, 0.4, 0.4, 0.75]], dtype=torch.float64)
# rows: (anchor, positive_1, positive_2, negative_1, negative_2); row 1's second positive is a spare (NaN),
# row 2's second negative has no teacher score
LABELS_MULTI = torch.tensor([[0.9, 0.85, 0.2, 0.5], [0.8, math.nan, 0.6, 0.3], [0.7, 0.75, 0.4, math.nan]],
                            dtype=torch.float64)
KEYS_MULTI = [torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8]), torch.tensor([9, 3, 10]),
              torch.tensor([11, 12, 13])]  # row 1's first negative repeats row 0's positive (an in-batch duplicate)


# ---- ListwiseDistillation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature,teacher_temperature,similarity",
                         [(0.05, 0.05, "cosine"), (0.1, 0.02, "cosine"), (2.0, 0.5, "dot")])
def test_listwise_matches_loop_reference(temperature, teacher_temperature, similarity):
    emb = columns(num_columns=5)
    loss = ListwiseDistillation(None, temperature=temperature, teacher_temperature=teacher_temperature,
                                similarity=similarity)
    got = loss.compute_loss_from_embeddings(emb, LABELS)
    expected = ref.listwise_kl(emb, ref.classify(emb), LABELS, temperature, teacher_temperature, similarity)
    torch.testing.assert_close(got, expected)
    assert float(got) > 0


@pytest.mark.parametrize("margin,sizes", [(None, [4, 3, 3]), (0.0, [4, 3, 3]), (0.25, [4, 2, 3])])
def test_listwise_multi_positive_nan_scores_and_masks_match_reference(margin, sizes):
    emb = columns(num_columns=5, seed=3)
    loss = ListwiseDistillation(None, temperature=0.1, teacher_temperature=0.05, num_positive_columns=2,
                                margin=margin)
    got = loss.compute_loss_from_embeddings(emb, LABELS_MULTI, text_keys=KEYS_MULTI)
    labels_ref = ref.labels_reference(LABELS_MULTI, 3, 4)
    status = ref.classify(emb, num_pos=2, keys=KEYS_MULTI, labels=LABELS_MULTI, reference=labels_ref, margin=margin)
    torch.testing.assert_close(got, ref.listwise_kl(emb, status, LABELS_MULTI, 0.1, 0.05))
    # the spare slot (NaN), the unscored negative and (margin 0.25) row 1's 0.6 > 0.8 - 0.25 are out of the lists
    assert [len(items) for items in ref.own_list(status, LABELS_MULTI, 3)] == sizes


def test_listwise_guard_drops_negatives_the_teacher_ranks_above_the_positive():
    emb = columns(num_columns=4, seed=4)
    labels = torch.tensor([[0.5, 0.9, 0.1], [0.8, 0.2, 0.3], [0.6, 0.4, 0.7]], dtype=torch.float64)
    guarded = ListwiseDistillation(None, margin=0.0).build_batch(emb, labels)
    own = [[bool(guarded.negative[i, c * 3 + i]) for c in (1, 2)] for i in range(3)]
    assert own == [[False, True], [True, True], [True, False]]


def test_listwise_equals_sentence_transformers_distill_kl():
    import inspect

    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss

    emb = columns(batch=4, num_columns=5, seed=5)
    labels = torch.rand(4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 10
    separate = "teacher_temperature" in inspect.signature(DistillKLDivLoss.__init__).parameters
    pairs = [(1.0, 1.0), (2.0, 2.0), (0.5, 0.5)] + ([(0.5, 2.0), (1.0, 0.3)] if separate else [])
    for student_t, teacher_t in pairs:
        kwargs = {"student_temperature": student_t, "teacher_temperature": teacher_t} if separate else {}
        st_loss = DistillKLDivLoss(None, temperature=student_t, **kwargs)
        expected = st_loss.compute_loss_from_embeddings(emb, labels)
        got = ListwiseDistillation(None, temperature=student_t, teacher_temperature=teacher_t, similarity="dot",
                                   kl_weight=student_t ** 2, mask_identical_texts=False)
        torch.testing.assert_close(got.compute_loss_from_embeddings(emb, labels), expected, rtol=0, atol=1e-6)


def test_listwise_is_zero_when_the_student_equals_the_teacher_and_positive_otherwise():
    emb = columns(num_columns=4, seed=6)
    loss = ListwiseDistillation(None, temperature=0.1, teacher_temperature=0.1)
    student = ref.logits(emb, 1.0)
    own = torch.tensor([[float(student[i][c * 3 + i]) for c in range(3)] for i in range(3)], dtype=torch.float64)
    torch.testing.assert_close(loss.compute_loss_from_embeddings(emb, own), torch.tensor(0.0, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    assert float(loss.compute_loss_from_embeddings(emb, own.flip(1))) > 1e-3


def test_listwise_with_infonce_is_the_sum_and_reduces_to_infonce():
    emb = columns(num_columns=5, seed=7)
    kw = dict(temperature=0.05, num_positive_columns=2)
    keys = KEYS_MULTI
    infonce = InfoNCE(None, **kw).compute_loss_from_embeddings(emb, LABELS_MULTI, text_keys=keys)
    kl = ListwiseDistillation(None, teacher_temperature=0.03, **kw).compute_loss_from_embeddings(
        emb, LABELS_MULTI, text_keys=keys)
    mixed = ListwiseDistillation(None, teacher_temperature=0.03, kl_weight=0.5, infonce_weight=2.0, **kw)
    torch.testing.assert_close(mixed.compute_loss_from_embeddings(emb, LABELS_MULTI, text_keys=keys),
                               0.5 * kl + 2.0 * infonce, rtol=0, atol=1e-12)
    only_infonce = ListwiseDistillation(None, kl_weight=0.0, infonce_weight=1.0, **kw)
    assert torch.equal(only_infonce.compute_loss_from_embeddings(emb, LABELS_MULTI, text_keys=keys), infonce)


def test_listwise_one_positive_one_negative_is_binary_kl():
    emb = columns(batch=2, num_columns=3, seed=8)
    labels = torch.tensor([[1.0, 0.0], [0.3, 0.6]], dtype=torch.float64)
    got = ListwiseDistillation(None, temperature=1.0, teacher_temperature=1.0,
                               similarity="dot").compute_loss_from_embeddings(emb, labels)
    total = 0.0
    for i in range(2):
        p = torch.sigmoid(labels[i, 0] - labels[i, 1])
        q = torch.sigmoid(emb[0][i] @ emb[1][i] - emb[0][i] @ emb[2][i])
        total += p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    torch.testing.assert_close(got, total / 2)


def test_listwise_gradcheck_float64():
    emb = [e.requires_grad_() for e in columns(num_columns=5, seed=9)]
    loss = ListwiseDistillation(None, temperature=0.5, teacher_temperature=0.2, num_positive_columns=2,
                                infonce_weight=0.3)
    assert torch.autograd.gradcheck(
        lambda *e: loss.compute_loss_from_embeddings(list(e), LABELS_MULTI, text_keys=KEYS_MULTI), emb)


# ---- MarginMSE -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_margin_mse_matches_loop_reference(similarity):
    emb = columns(num_columns=5, seed=10)
    got = MarginMSE(None, similarity=similarity).compute_loss_from_embeddings(emb, LABELS)
    torch.testing.assert_close(got, ref.margin_mse(emb, ref.classify(emb), LABELS, 1, similarity))


@pytest.mark.parametrize("margin", [None, 0.0])
def test_margin_mse_multi_positive_nan_scores_and_masks_match_reference(margin):
    emb = columns(num_columns=5, seed=11)
    got = MarginMSE(None, num_positive_columns=2, margin=margin).compute_loss_from_embeddings(
        emb, LABELS_MULTI, text_keys=KEYS_MULTI)
    labels_ref = ref.labels_reference(LABELS_MULTI, 3, 4)
    status = ref.classify(emb, num_pos=2, keys=KEYS_MULTI, labels=LABELS_MULTI, reference=labels_ref, margin=margin)
    torch.testing.assert_close(got, ref.margin_mse(emb, status, LABELS_MULTI, 2))


def test_margin_mse_equals_sentence_transformers():
    from sentence_transformers.sentence_transformer.losses import MarginMSELoss

    emb = columns(batch=4, num_columns=5, seed=12)
    scores = torch.rand(4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    margins = scores[:, :1] - scores[:, 1:]
    expected = MarginMSELoss(None).compute_loss_from_embeddings(emb, margins)
    got = MarginMSE(None).compute_loss_from_embeddings(emb, scores)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # the triplet case: ST takes a (B,) margin
    emb3 = emb[:3]
    expected3 = MarginMSELoss(None).compute_loss_from_embeddings(emb3, margins[:, 0])
    torch.testing.assert_close(MarginMSE(None).compute_loss_from_embeddings(emb3, scores[:, :2]), expected3,
                               rtol=0, atol=1e-6)


def test_margin_mse_is_zero_when_margins_agree():
    emb = columns(num_columns=4, seed=13)
    s = ref.logits(emb, 1.0, "dot")
    own = torch.tensor([[float(s[i][c * 3 + i]) + 5.0 for c in range(3)] for i in range(3)], dtype=torch.float64)
    torch.testing.assert_close(MarginMSE(None).compute_loss_from_embeddings(emb, own),
                               torch.tensor(0.0, dtype=torch.float64), rtol=0, atol=1e-12)


def test_margin_mse_gradcheck_float64():
    emb = [e.requires_grad_() for e in columns(num_columns=5, seed=14)]
    loss = MarginMSE(None, num_positive_columns=2, similarity="cosine")
    assert torch.autograd.gradcheck(
        lambda *e: loss.compute_loss_from_embeddings(list(e), LABELS_MULTI, text_keys=KEYS_MULTI), emb)


# ---- shared --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ListwiseDistillation, MarginMSE])
def test_needs_teacher_scores(cls):
    with pytest.raises(ValueError, match="needs teacher scores"):
        cls(None).compute_loss_from_embeddings(columns())


@pytest.mark.parametrize("kwargs,match", [({"teacher_temperature": 0}, "teacher_temperature=0"),
                                          ({"kl_weight": -1}, "kl_weight=-1"),
                                          ({"infonce_weight": -0.5}, "infonce_weight=-0.5"),
                                          ({"multi_positive": "max"}, "multi_positive='max'")])
def test_listwise_validation_names_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ListwiseDistillation(None, **kwargs)


def test_registered_for_the_cli_with_config_and_citation():
    assert LOSSES["listwise"] is ListwiseDistillation and LOSSES["margin-mse"] is MarginMSE
    config = ListwiseDistillation(None, teacher_temperature=0.02, infonce_weight=0.1).get_config_dict()
    assert config["teacher_temperature"] == 0.02 and config["infonce_weight"] == 0.1
    assert "temperature" not in MarginMSE(None).get_config_dict()
    assert "2502.19712" in ListwiseDistillation(None).citation and "2010.02666" in MarginMSE(None).citation


def test_build_loss_from_the_train_config():
    from negmine.training import build_loss

    loss = build_loss("listwise", None, {"teacher_temperature": 0.02, "infonce_weight": 0.2}, num_positive_columns=2)
    assert isinstance(loss, ListwiseDistillation) and loss.num_positive_columns == 2 and loss.infonce_weight == 0.2
    assert isinstance(build_loss("margin-mse", None, {}), MarginMSE)
