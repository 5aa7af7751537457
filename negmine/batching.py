"""Negative-aware batching (NGAME, Dahiya et al., WSDM 2023): batches of queries whose embeddings are close.

With in-batch negatives, a random batch mostly holds unrelated queries, so the other rows' positives and negatives
are easy. NGAME clusters the queries by embedding and fills each batch from a few clusters, so in-batch negatives
are hard too, at no extra encoding cost during training.

:class:`NgameBatchSampler` plugs into ``SentenceTransformerTrainer`` through its supported hook, the
``batch_sampler`` training argument (a callable taking ``dataset, batch_size, drop_last, valid_label_columns,
generator, seed``; sentence-transformers 5.x/6.x). It keeps the guarantee of sentence-transformers'
``NoDuplicatesBatchSampler``: no text appears twice in a batch, across all text columns (a conflicting row is deferred
to a later batch, as there). Every row comes exactly once per epoch.

* Clusters: balanced recursive 2-means (:func:`balanced_clusters`) on the rows' anchor embeddings, split until each
  cluster holds at most ``cluster_size`` rows; computed once from the embeddings given (the start model's query
  embeddings through the embedding cache, see :func:`negmine.training.ngame_embeddings`) and refreshed when the
  training data is re-mined (:mod:`negmine.dynamic` builds a new trainer, hence a new sampler, each round).
* Order: each epoch shuffles the clusters and the rows within them (seed ``seed + epoch``), then fills batches
  greedily in that order; a batch of ``batch_size`` rows holds about ``batch_size / cluster_size`` clusters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from negmine._st_compat import default_batch_sampler

__all__ = ["NgameBatchSampler", "balanced_clusters", "ngame_batches"]


def balanced_clusters(
    embeddings: np.ndarray, cluster_size: int, seed: int = 0, iterations: int = 5
) -> list[np.ndarray]:
    """Row indices grouped into clusters of at most ``cluster_size`` rows by balanced recursive 2-means.

    Each split picks two random rows as centres, then alternates: sort the rows by ``x · (c1 - c2)``, give the first
    half to ``c1`` (an exactly balanced assignment), recompute the centres as means. Deterministic for a seed.
    """
    if cluster_size < 1:
        raise ValueError(f"cluster_size must be >= 1, got {cluster_size}")
    x = np.asarray(embeddings, dtype=np.float32)
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    stack = [np.arange(len(x))]
    while stack:
        rows = stack.pop()
        if len(rows) <= cluster_size:
            if len(rows):
                out.append(rows)
            continue
        first, second = rng.choice(len(rows), size=2, replace=False)
        c1, c2 = x[rows[first]], x[rows[second]]
        half = len(rows) // 2
        order = np.arange(len(rows))
        for _ in range(iterations):
            order = np.argsort(-(x[rows] @ (c1 - c2)), kind="stable")
            c1, c2 = x[rows[order[:half]]].mean(axis=0), x[rows[order[half:]]].mean(axis=0)
        stack += [rows[order[half:]], rows[order[:half]]]
    return out


def ngame_batches(
    clusters: Sequence[np.ndarray],
    values: Sequence[frozenset[str]],
    batch_size: int,
    seed: int,
    drop_last: bool = False,
) -> list[list[int]]:
    """One epoch's batches: clusters and their rows shuffled (``seed``), then batches filled in that order, a row
    whose texts overlap the batch's deferred to the next batch that can take it (no duplicate texts in a batch)."""
    rng = np.random.default_rng(seed)
    order = [int(i) for c in rng.permutation(len(clusters)) for i in rng.permutation(clusters[c])]
    pending: list[int] = []  # rows deferred so far, in order; tried first by the next batch
    cursor = 0
    batches: list[list[int]] = []
    while pending or cursor < len(order):
        batch: list[int] = []
        seen: set[str] = set()
        still: list[int] = []

        def offer(index: int) -> None:
            if len(batch) < batch_size and values[index].isdisjoint(seen):
                batch.append(index)
                seen.update(values[index])
            else:
                still.append(index)

        for index in pending:
            offer(index)
        while len(batch) < batch_size and cursor < len(order):
            offer(order[cursor])
            cursor += 1
        pending = still
        if len(batch) == batch_size or not drop_last:
            batches.append(batch)
    return batches


def _row_values(dataset: Any, label_columns: Sequence[str]) -> list[frozenset[str]]:
    columns = [c for c in dataset.column_names if c not in set(label_columns) and c != "dataset_name"]
    table = {c: dataset[c] for c in columns}
    return [frozenset(v for c in columns if isinstance(v := table[c][i], str)) for i in range(len(dataset))]


class NgameBatchSampler(default_batch_sampler()):
    """Batches of rows whose anchors are close in embedding space, without duplicate texts (see the module docstring).

    Args:
        dataset: the training ``datasets.Dataset``.
        batch_size / drop_last / valid_label_columns / generator / seed: given by the trainer.
        embeddings: ``(len(dataset), d)`` anchor embeddings, one per row.
        cluster_size: rows per cluster (at most).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
        *,
        embeddings: np.ndarray,
        cluster_size: int = 8,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if len(embeddings) != len(dataset):
            raise ValueError(f"{len(embeddings)} embeddings for {len(dataset)} rows")
        self.dataset, self.cluster_size = dataset, cluster_size
        self.values = _row_values(dataset, valid_label_columns or [])
        self.clusters = balanced_clusters(np.asarray(embeddings), cluster_size, seed=seed)
        self._cache: tuple[int, list[list[int]]] | None = None

    def _epoch_batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (
                self.epoch,
                ngame_batches(
                    self.clusters, self.values, self.batch_size, int(self.seed or 0) + int(self.epoch), self.drop_last
                ),
            )
        return self._cache[1]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._epoch_batches()

    def __len__(self) -> int:
        return len(self._epoch_batches())
