"""Hard-negative mixing (MoCHi): reduction to InfoNCE, the synthetic points, false-negative exclusion, gradcheck."""

from __future__ import annotations

import copy

import _loss_reference as ref
import pytest
import torch
import torch.nn.functional as F

from negmine.losses import HardNegativeMixing, InfoNCE, SoftInfoNCE


def columns(batch=3, num_columns=4, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g, dtype=torch.float64) for _ in range(num_columns)]


def test_no_mixes_equals_base_exactly():
    emb = columns()
    labels = torch.rand(3, 3, dtype=torch.float64)
    for base in (InfoNCE(None), InfoNCE(None, symmetric=True, margin=0.1), SoftInfoNCE(None, alpha=1.0)):
        mixing = HardNegativeMixing(None, base, num_hardest=4, num_negative_mixes=0, num_query_mixes=0)
        assert torch.equal(mixing.compute_loss_from_embeddings(emb, labels),
                           base.compute_loss_from_embeddings(emb, labels))


def test_warmup_steps_use_the_base_loss():
    emb = [e.requires_grad_(True) for e in columns()]
    base = InfoNCE(None)
    mixing = HardNegativeMixing(None, base, num_negative_mixes=8, num_query_mixes=8, warmup_steps=2)
    plain = base.compute_loss_from_embeddings(emb)
    assert torch.equal(mixing.compute_loss_from_embeddings(emb), plain)
    assert torch.equal(mixing.compute_loss_from_embeddings(emb), plain)
    assert mixing.compute_loss_from_embeddings(emb) > plain  # third step: mixing is on (more negatives)


def test_matches_loop_reference_given_the_synthetic_points():
    emb = columns(batch=3, num_columns=4, dim=6, seed=1)
    mixing = HardNegativeMixing(None, InfoNCE(None, temperature=0.1), num_hardest=3, num_negative_mixes=5,
                                num_query_mixes=4, seed=3)
    state = mixing.generator.get_state()
    points, valid = mixing.synthetic_points(mixing.base.build_batch(emb))
    mixing.generator.set_state(state)
    got = mixing.compute_loss_from_embeddings(emb)
    assert valid.all() and points.shape == (3, 9, 6)
    q = F.normalize(emb[0], dim=-1)
    extra = [[(q[i] @ points[i, m]) / 0.1 for m in range(9)] for i in range(3)]
    torch.testing.assert_close(got, ref.infonce(emb, ref.classify(emb), 0.1, extra=extra))


def _hardest(emb, row, n, excluded=()):
    q = F.normalize(emb[0][row], dim=-1)
    cands = [(float(q @ F.normalize(v, dim=-1)), F.normalize(v, dim=-1)) for j, (k, c, v) in
             enumerate(ref.candidates(emb)) if not (k == row and c == 0) and j not in excluded]
    return [v for _, v in sorted(cands, key=lambda x: -x[0])[:n]]


def _is_mix(point, a, b, low=0.0, high=1.0):
    """Whether ``point`` is the normalisation of ``w a + (1 - w) b`` for some w in [low, high]."""
    for w in torch.linspace(low, high, 2001, dtype=torch.float64):
        if torch.allclose(F.normalize(w * a + (1 - w) * b, dim=-1), point, atol=2e-3):
            return True
    return False


def test_synthetic_points_are_unit_detached_mixes_of_the_hardest():
    emb = [e.requires_grad_(True) for e in columns(batch=2, num_columns=4, dim=3, seed=2)]
    mixing = HardNegativeMixing(None, InfoNCE(None), num_hardest=2, num_negative_mixes=6, num_query_mixes=6, seed=1)
    points, _ = mixing.synthetic_points(mixing.base.build_batch(emb))
    assert not points.requires_grad
    torch.testing.assert_close(points.norm(dim=-1), torch.ones(2, 12, dtype=torch.float64))
    for row in range(2):
        hard = _hardest([e.detach() for e in emb], row, 2)
        q = F.normalize(emb[0][row].detach(), dim=-1)
        for m in range(6):
            assert any(_is_mix(points[row, m], a, b) for a in hard for b in hard)
        for m in range(6, 12):
            assert any(_is_mix(points[row, m], q, n, 0.0, 0.5) for n in hard)  # query share below one half


def test_false_negatives_are_never_mixed():
    emb = columns(batch=2, num_columns=3, dim=4, seed=4)
    emb[2][0] = emb[0][0] * 3  # row 0's hard negative is the query's own text: the hardest by far
    keys = [torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([0, 4])]
    mixing = HardNegativeMixing(None, InfoNCE(None), num_hardest=1, num_negative_mixes=3, num_query_mixes=3)
    points, _ = mixing.synthetic_points(mixing.base.build_batch(emb, None, keys))
    allowed = _hardest(emb, 0, 1, excluded={2})[0]  # candidate 2 = row 0's negative, masked as identical text
    for m in range(3):
        torch.testing.assert_close(points[0, m], allowed)
    suspect = copy.deepcopy(mixing)
    suspect.pool_margin = 0.0
    labels = torch.tensor([[0.5, 0.9], [0.5, 0.1]], dtype=torch.float64)  # the teacher suspects row 0's negative
    keys_no_dup = [torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([5, 4])]
    pool = suspect.mixing_pool(suspect.base.build_batch(emb, labels, keys_no_dup))
    assert not pool[0, 2] and pool[0, 1] and pool[0, 3]


def test_gradcheck_float64():
    """The gradient flows through the queries (and real candidates) with the synthetic points held fixed."""
    emb = [e.clone().requires_grad_(True) for e in columns(batch=2, num_columns=3, dim=3, seed=5)]
    mixing = HardNegativeMixing(None, InfoNCE(None, temperature=0.5), num_hardest=2, num_negative_mixes=2,
                                num_query_mixes=2)
    fixed = mixing.synthetic_points(mixing.base.build_batch([e.detach() for e in emb]))
    mixing.synthetic_points = lambda batch: fixed  # the points are constants of the loss (no gradient by design)
    assert torch.autograd.gradcheck(lambda *e: mixing.compute_loss_from_embeddings(list(e)), emb)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_hardest": 0}, "num_hardest=0"), ({"num_negative_mixes": -1}, "num_negative_mixes=-1"),
    ({"num_query_mixes": 1.5}, "num_query_mixes=1.5"), ({"warmup_steps": -2}, "warmup_steps=-2"),
    ({"pool_margin_strategy": "x"}, "pool_margin_strategy='x'"),
])
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HardNegativeMixing(None, **kwargs)


def test_base_must_be_cosine_infonce():
    with pytest.raises(ValueError, match="base.similarity='dot'"):
        HardNegativeMixing(None, InfoNCE(None, similarity="dot"))
    with pytest.raises(ValueError, match="base=Linear"):
        HardNegativeMixing(None, torch.nn.Linear(1, 1))


def test_config_and_citation():
    mixing = HardNegativeMixing(None, num_hardest=8, num_negative_mixes=4, num_query_mixes=1)
    config = mixing.get_config_dict()
    assert config["num_hardest"] == 8 and config["base"] == "InfoNCE" and config["temperature"] == 0.05
    assert "2010.01028" in mixing.citation
