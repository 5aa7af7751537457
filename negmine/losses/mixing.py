"""Hard negative mixing (MoCHi, Kalantidis et al., NeurIPS 2020) as a wrapper around InfoNCE."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from negmine.losses._common import check_choice, check_int, check_range, embed, float32_columns, float32_math
from negmine.losses._masks import CandidateBatch, MarginStrategy, margin_mask
from negmine.losses.infonce import InfoNCE

logger = logging.getLogger(__name__)


class HardNegativeMixing(nn.Module):
    def __init__(self, model: nn.Module, base: InfoNCE | None = None, num_hardest: int = 16,
                 num_negative_mixes: int = 16, num_query_mixes: int = 4, warmup_steps: int = 0,
                 pool_margin: float | None = None, pool_margin_strategy: MarginStrategy = "absolute",
                 seed: int = 0) -> None:
        """MoCHi(N, s, s'): synthetic hard negatives mixed from each query's hardest negatives, added to InfoNCE.

        For each query ``q`` (L2-normalised) and its negatives (docs/methods.md §6):

        1. take the ``N = num_hardest`` negatives most similar to ``q`` (by the current model, no gradient);
        2. ``s = num_negative_mixes`` points ``h = normalize(a n_i + (1 - a) n_j)``, ``a ~ U(0, 1)``, ``n_i, n_j``
           drawn from those N;
        3. ``s' = num_query_mixes`` points ``h' = normalize(b q + (1 - b) n_j)``, ``b ~ U(0, 0.5)`` (the query's
           share stays below one half);
        4. add ``q . h / t`` for all ``h`` as extra negatives of this query only. The synthetic points carry no
           gradient (the query's side of the logit does).

        Known or suspected false negatives never enter the mixing pool: the negatives the base loss already masks
        (identical texts, the base's ``margin`` rule) and, with ``pool_margin``, every negative whose reference score
        (the teacher scores / the base's guide) is above the row's lowest positive score minus ``pool_margin`` - such
        a negative can stay an ordinary negative of the base loss but is not mixed. With ``s = s' = 0``, and during
        the first ``warmup_steps`` training steps (forward calls with gradients), this is exactly the base loss.

        MoCHi was made for MoCo's queue of thousands of negatives; with a few hundred in-batch candidates and a low
        temperature the synthetic points can swamp the loss. Check on your data before training with
        ``benchmarks/mixing_probe.py``: on MiniLM-mined SciFact batches of 32 at temperature 0.05, the 20 synthetic
        points take 84 % of the softmax (the positive's probability falls from 0.52 to 0.12), half the query mixes
        score above the positive, and the model trained with them lost 2.6 nDCG@10 points against plain InfoNCE.
        The query mixes do most of it: without them the 16 negative mixes take 42 % (4 of them: 16 %, and that model
        lost 0.5 points, p = 0.29); a larger pool (``num_hardest=64``) takes 67 %, and so does temperature 0.1.

        Args:
            model: the SentenceTransformer being trained.
            base: the wrapped :class:`~negmine.losses.InfoNCE` (or a subclass); default ``InfoNCE(model)``. It must
                use cosine similarity (the synthetic points are unit vectors).
            num_hardest: ``N`` >= 1 (fewer when a query has fewer negatives).
            num_negative_mixes: ``s`` >= 0.
            num_query_mixes: ``s'`` >= 0.
            warmup_steps: training steps before mixing starts, >= 0.
            pool_margin: optional margin for excluding suspected false negatives from the mixing pool.
            pool_margin_strategy: ``"absolute"`` or ``"relative"``, as for the miners.
            seed: seed of the loss's own random generator (mixing coefficients and pairs).

        Example:
            >>> loss = HardNegativeMixing(model, InfoNCE(model), num_hardest=16)  # doctest: +SKIP
        """
        super().__init__()
        base = InfoNCE(model) if base is None else base
        if not isinstance(base, InfoNCE):
            raise ValueError(f"base={type(base).__name__} is not allowed; expected an InfoNCE loss (or a subclass)")
        if base.similarity != "cosine":
            raise ValueError(f"base.similarity={base.similarity!r} is not allowed; mixing needs 'cosine'")
        check_int("num_hardest", num_hardest, low=1)
        check_int("num_negative_mixes", num_negative_mixes, low=0)
        check_int("num_query_mixes", num_query_mixes, low=0)
        check_int("warmup_steps", warmup_steps, low=0)
        check_int("seed", seed, low=0)
        check_choice("pool_margin_strategy", pool_margin_strategy, ("absolute", "relative"))
        if pool_margin is not None:
            check_range("pool_margin", pool_margin, 0.0 if pool_margin_strategy == "relative" else None, None)
        self.model = model
        self.base = base
        self.num_hardest = num_hardest
        self.num_negative_mixes, self.num_query_mixes = num_negative_mixes, num_query_mixes
        self.warmup_steps = warmup_steps
        self.pool_margin, self.pool_margin_strategy = pool_margin, pool_margin_strategy
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.steps = 0

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        inputs = self.base.collect_inputs(features)
        embeddings = embed(self.model, features)
        return self.compute_loss_from_embeddings(embeddings, labels, **inputs)

    def compute_loss_from_embeddings(self, embeddings: Sequence[Tensor], labels: Tensor | None = None,
                                     **inputs: Any) -> Tensor:
        """The loss from per-column embeddings; keyword inputs as in :meth:`InfoNCE.compute_loss_from_embeddings`."""
        embeddings = float32_columns(embeddings)
        with float32_math(embeddings):
            batch = self.base.build_batch(embeddings, labels, inputs.get("text_keys"),
                                          inputs.get("reference_embeddings"), inputs.get("reference_scores"))
            if torch.is_grad_enabled():
                self.steps += 1
            extra = None
            if self.steps > self.warmup_steps and self.num_negative_mixes + self.num_query_mixes > 0:
                extra = self.synthetic_logits(batch)
            return self.base.loss_from_batch(batch, extra_negative_logits=extra, labels=labels,
                                             reference_embeddings=inputs.get("reference_embeddings"))

    def mixing_pool(self, batch: CandidateBatch) -> Tensor:
        """(B, C) bool: the negatives that may be mixed (the base's negatives minus suspected false negatives)."""
        pool = batch.negative
        if self.pool_margin is not None and batch.reference is not None:
            pool = pool & ~margin_mask(batch.reference, batch.positive, self.pool_margin, self.pool_margin_strategy)
        return pool

    def synthetic_points(self, batch: CandidateBatch) -> tuple[Tensor, Tensor]:
        """``(points (B, s + s', d), valid (B, 1))``: unit-norm, detached synthetic negatives of each query."""
        queries = F.normalize(batch.anchors.detach(), dim=-1)
        candidates = F.normalize(batch.candidates.detach(), dim=-1)
        pool = self.mixing_pool(batch)
        sims = (queries @ candidates.T).masked_fill(~pool, float("-inf"))
        k = min(self.num_hardest, candidates.size(0))
        hardest = sims.topk(k, dim=1).indices  # (B, k); the first min(k, |pool|) are real pool members
        available = pool.sum(dim=1).clamp(max=k)  # (B,)
        hard = candidates[hardest]  # (B, k, d)
        batch_size, device, dtype = queries.size(0), queries.device, queries.dtype

        def draw(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=self.generator, dtype=torch.float64).to(device=device)

        def pick(count: int) -> Tensor:  # uniform indices into each row's available hardest negatives
            index = (draw(batch_size, count) * available[:, None].clamp(min=1)).long()
            index = torch.minimum(index, (available[:, None] - 1).clamp(min=0))
            return hard.gather(1, index[..., None].expand(-1, -1, hard.size(-1)))

        s, s_prime = self.num_negative_mixes, self.num_query_mixes
        a = draw(batch_size, s, 1).to(dtype)
        mixed = F.normalize(a * pick(s) + (1 - a) * pick(s), dim=-1)
        b = (draw(batch_size, s_prime, 1) * 0.5).to(dtype)
        query_mixed = F.normalize(b * queries[:, None, :] + (1 - b) * pick(s_prime), dim=-1)
        return torch.cat([mixed, query_mixed], dim=1).detach(), (available > 0)[:, None]

    def synthetic_logits(self, batch: CandidateBatch) -> Tensor:
        """(B, s + s') logits ``q . h / t`` (gradient through ``q`` only); ``-inf`` for rows with an empty pool."""
        points, valid = self.synthetic_points(batch)
        queries = F.normalize(batch.anchors, dim=-1)
        logits = torch.einsum("bd,bmd->bm", queries, points.to(queries.dtype)) * self.base.scale
        return logits.masked_fill(~valid, float("-inf"))

    def get_config_dict(self) -> dict[str, Any]:
        return {"base": type(self.base).__name__, **self.base.get_config_dict(), "num_hardest": self.num_hardest,
                "num_negative_mixes": self.num_negative_mixes, "num_query_mixes": self.num_query_mixes,
                "warmup_steps": self.warmup_steps, "pool_margin": self.pool_margin,
                "pool_margin_strategy": self.pool_margin_strategy, "seed": self.seed}

    @property
    def citation(self) -> str:
        return """
@inproceedings{kalantidis2020hard,
    title={Hard Negative Mixing for Contrastive Learning},
    author={Kalantidis, Yannis and Sariyildiz, Mert Bulent and Pion, Noe and Weinzaepfel, Philippe and
            Larlus, Diane},
    booktitle={Advances in Neural Information Processing Systems},
    year={2020},
    eprint={2010.01028},
    archivePrefix={arXiv},
    url={https://arxiv.org/abs/2010.01028},
}
"""
