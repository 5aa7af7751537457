"""The BEIR evaluation of :mod:`negmine.evaluation.beir` as a sentence-transformers evaluator, for
``SentenceTransformerTrainer(evaluator=...)``.

A module of its own because subclassing sentence-transformers' evaluator base class imports torch, which
``negmine eval`` with a non-torch encoder never needs; ``negmine.evaluation.BEIREvaluator`` imports it on first use.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from negmine._st_compat import evaluator_base
from negmine.data import RetrievalData
from negmine.encoders import EmbeddingCache, Encoder
from negmine.errors import DataError
from negmine.evaluation.beir import retrieve
from negmine.evaluation.metrics import DEFAULT_K_VALUES, check_k_values, evaluate_per_query

_BaseEvaluator = evaluator_base()

logger = logging.getLogger(__name__)


class BEIREvaluator(_BaseEvaluator):
    """Retrieval evaluation of a ``SentenceTransformer`` on BEIR data, for ``SentenceTransformerTrainer``.

    Encodes the corpus and the split's queries with the model being trained, searches exactly and scores with
    ``pytrec_eval`` (:func:`~negmine.evaluation.metrics.evaluate_per_query`). The primary metric is ``ndcg@10``
    (greater is better), so ``load_best_model_at_end``/``metric_for_best_model`` work; the trainer logs
    ``eval_{name}_ndcg@10`` and the model card receives the metrics.

    Args:
        data: corpus, queries and qrels (``negmine.data.load_data(folder, "dev")``). For frequent evaluation
            during training, shrink it with :func:`~negmine.evaluation.beir.subsample`.
        name: prefix of the metric names (e.g. ``"scifact-dev"``).
        batch_size: encoding batch size.
        k_values: cut-offs; must include 10 for the primary metric ``ndcg@10`` (else ``ndcg@max(k)`` is primary).
        ignore_identical_ids: drop retrieved documents whose id equals the query id.
        query_prompt / corpus_prompt: prompts (default: the model's own ``query``/``document`` prompts).
        show_progress_bar: progress bars while encoding.
        write_csv: append the metrics to ``beir_evaluation_{name}_results.csv`` in the trainer's output folder.
        cache: an :class:`EmbeddingCache` (default ``None``: the weights change between evaluations, so caching
            would only fill the disk).

    Example:
        >>> from negmine.data import load_data  # doctest: +SKIP
        >>> evaluator = BEIREvaluator(load_data("scifact", "test"), name="scifact")  # doctest: +SKIP
        >>> trainer = SentenceTransformerTrainer(model=model, ..., evaluator=evaluator)  # doctest: +SKIP
    """

    def __init__(self, data: RetrievalData, name: str = "", batch_size: int = 32,
                 k_values: Sequence[int] = DEFAULT_K_VALUES, *, ignore_identical_ids: bool = True,
                 query_prompt: str | None = None, corpus_prompt: str | None = None,
                 show_progress_bar: bool = False,
                 write_csv: bool = True, cache: EmbeddingCache | None = None) -> None:
        super().__init__()
        if not isinstance(data, RetrievalData):
            raise TypeError("data must be a negmine RetrievalData (negmine.data.load_data), "
                            f"got {type(data).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not data.split_query_ids:
            raise DataError(f"{data.name or 'data'}[{data.split}] has no query with a positive to evaluate",
                            field="qrels")
        self.data, self.name, self.batch_size = data, name, batch_size
        self.k_values = check_k_values(k_values)
        self.ignore_identical_ids = ignore_identical_ids
        self.query_prompt, self.corpus_prompt = query_prompt, corpus_prompt
        self.show_progress_bar, self.write_csv, self.cache = show_progress_bar, write_csv, cache
        self.greater_is_better = True
        self.primary_metric = f"ndcg@{10 if 10 in self.k_values else max(self.k_values)}"
        self.csv_file = f"beir_evaluation{'_' + name if name else ''}_results.csv"

    def _encoder(self, model: Any) -> Encoder:
        from negmine.encoders.st import SentenceTransformerEncoder

        similarity = "dot" if getattr(model, "similarity_fn_name", None) == "dot" else "cosine"
        return SentenceTransformerEncoder(model, query_prompt=self.query_prompt, corpus_prompt=self.corpus_prompt,
                                          similarity=similarity, name=self.name or "model")

    def compute_metrics(self, model: Any) -> dict[str, float]:
        """Unprefixed mean metrics of ``model`` on the evaluator's data."""
        run = retrieve(self._encoder(model), self.data, max(self.k_values),
                       ignore_identical_ids=self.ignore_identical_ids,
                       cache=self.cache, batch_size=self.batch_size, show_progress_bar=self.show_progress_bar)
        qrels = {q: self.data.qrels[q] for q in self.data.split_query_ids}
        means, _ = evaluate_per_query(qrels, run, self.k_values,
                                      ignore_identical_ids=self.ignore_identical_ids)
        return means

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        where = f" after epoch {epoch}" if epoch != -1 and steps == -1 else (
            f" in epoch {epoch} after {steps} steps" if epoch != -1 else "")
        logger.info("BEIR evaluation of the model on %s%s", self.name or self.data.name, where)
        metrics = self.compute_metrics(model)
        if output_path is not None and self.write_csv:
            self._append_csv(Path(output_path), metrics, epoch, steps)
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def _append_csv(self, folder: Path, metrics: Mapping[str, float], epoch: int, steps: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.csv_file
        names = list(metrics)
        new = not path.exists()
        with open(path, "a", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["epoch", "steps", *names])
            writer.writerow([epoch, steps, *(f"{metrics[n]:.6f}" for n in names)])

    @property
    def description(self) -> str:
        return "BEIR retrieval"

    def get_config_dict(self) -> dict[str, Any]:
        return {"dataset": self.data.name, "split": self.data.split, "k_values": list(self.k_values),
                "ignore_identical_ids": self.ignore_identical_ids, "num_queries": len(self.data.split_query_ids),
                "num_documents": len(self.data.corpus)}
