"""Mixed precision: under bf16 autocast (``negmine train --precision bf16``) every loss does its math in float32 on
the float32 copy of the bf16 embeddings, so it equals the float32 loss of the same (rounded) embeddings."""

from __future__ import annotations

import pytest
import torch

from negmine.losses import LOSSES

ARGS = {"mixing": {"num_hardest": 4, "num_negative_mixes": 2, "num_query_mixes": 1, "warmup_steps": 0}}


def columns(batch=4, num_columns=4, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.functional.normalize(torch.randn(batch, dim, generator=g), dim=-1) for _ in range(num_columns)]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_under_bf16_autocast_is_the_float32_loss_of_the_rounded_embeddings(name):
    emb = [e.bfloat16() for e in columns()]
    labels = torch.rand(4, 3, generator=torch.Generator().manual_seed(1))
    loss = LOSSES[name](None, **ARGS.get(name, {}))
    exact = LOSSES[name](None, **ARGS.get(name, {}))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss.compute_loss_from_embeddings(emb, labels)
    expected = exact.compute_loss_from_embeddings([e.float() for e in emb], labels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_gradients_reach_bf16_embeddings():
    emb = [e.bfloat16().requires_grad_() for e in columns()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = LOSSES["listwise"](None).compute_loss_from_embeddings(emb, torch.rand(4, 3))
    loss.backward()
    assert all(e.grad is not None and e.grad.dtype == torch.bfloat16 and e.grad.abs().sum() > 0 for e in emb)
