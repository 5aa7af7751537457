"""Dynamic negatives: train, re-mine with the student, continue (ANCE, Xiong et al., ICLR 2021; ADORE, Zhan et al.,
SIGIR 2021).

This module sits **above** training and mining: it is the one place that imports both (``negmine.training`` never
imports ``negmine.mining``; ``tests/test_architecture.py`` allows this direction only here and in ``negmine.cli``).

The loop (:func:`train_dynamic`), for ``remine_every = N`` epochs (or steps, ``remine_unit = "step"``):

1. train the model ``N`` epochs (steps) on the current negatives (a fresh trainer per round, so the learning-rate
   schedule and the optimizer restart each round: "ANCE-lite", not ANCE's asynchronous index refresh);
2. re-encode the corpus with the current student (the embedding cache is keyed by the weights, so each round's
   checkpoint has its own entry), re-mine with the same mining options as the first round (the mining run's
   ``manifest.json`` or ``remine_config``), **with** its false-negative guards: the ``cross_encoder`` rescoring of
   the mining options and, when ``remine_judge`` is set, a relabel judge over every re-mined record (a stronger
   student surfaces more false negatives; CET); when the loss reads teacher scores, the teacher that scored the
   first round (or ``remine_teacher``) scores the new negatives too, with its guard (:func:`round_teacher`);
3. continue with the new negatives, until the epochs (steps) are spent.

ADORE (``adore = True``): the model is a sentence-transformers ``Router`` whose document side is the start model,
frozen (:func:`negmine.training.adore_model`), so re-mining only re-encodes the queries; the corpus embeddings come
from the cache entry of the start model.

Costs are written to ``out/dynamic.json``: per round the training time and steps (seconds per step) and the
re-mining time with its parts.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negmine.data.mined import MinedRecord, read_records, write_mined
from negmine.errors import ConfigError
from negmine.mining.config import MineConfig
from negmine.training import (
    TrainConfig,
    adore_model,
    build_dataset,
    build_trainer,
    load_model,
    manifest_beside,
    query_side,
    run_manifest,
)

__all__ = ["DynamicResult", "RoundCost", "RoundTeacher", "check_schedule", "remine", "remine_config", "round_schedule",
           "round_teacher", "score_manifest", "train_dynamic"]

logger = logging.getLogger(__name__)


@dataclass
class RoundCost:
    round: int
    train_seconds: float
    steps: int
    remine_seconds: float | None = None
    remine_parts: dict[str, float] = field(default_factory=dict)

    @property
    def seconds_per_step(self) -> float | None:
        return self.train_seconds / self.steps if self.steps else None


@dataclass
class DynamicResult:
    out_dir: Path
    model_dir: Path
    rounds: list[RoundCost]
    records: list[MinedRecord]
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return len(self.records)


def check_schedule(cfg: TrainConfig) -> None:
    """The re-mining options' own errors (:func:`round_schedule`'s, before anything is loaded)."""
    if cfg.remine_every < 1:
        raise ConfigError(f"remine_every={cfg.remine_every!r}: expected an integer >= 1 for re-mining")
    if cfg.remine_unit != "step" and cfg.max_steps > 0:
        raise ConfigError("remine_unit='epoch' counts epochs: unset max_steps, or use remine_unit='step'")


def round_schedule(cfg: TrainConfig, steps_per_epoch: int | None = None) -> list[dict[str, Any]]:
    """The ``epochs``/``max_steps`` of each round: ``remine_every`` epochs (steps) per round until ``epochs``
    (``max_steps``) are spent; the last round takes what is left.

    With ``remine_unit='step'`` and no ``max_steps``, the total is what plain training would take:
    ``ceil(epochs * steps_per_epoch)``, the optimizer steps of one pass over the first round's data (the trainer's
    own count), so a re-mined run trains as many steps as the run it is compared with."""
    check_schedule(cfg)
    n = cfg.remine_every
    if cfg.remine_unit == "step":
        if cfg.max_steps > 0:
            total = cfg.max_steps
        elif steps_per_epoch:
            total = math.ceil(cfg.epochs * steps_per_epoch - 1e-9)
        else:
            raise ConfigError("remine_unit='step' needs max_steps > 0, or the length of an epoch in steps")
        return [{"epochs": cfg.epochs, "max_steps": min(n, total - start)} for start in range(0, total, n)]
    rounds = math.ceil(cfg.epochs / n - 1e-9)
    return [{"epochs": min(float(n), cfg.epochs - r * n), "max_steps": -1} for r in range(rounds)]


def remine_config(cfg: TrainConfig) -> MineConfig:
    """The mining options of every re-mining round: ``remine_config``'s ``[mine]`` table, else the ``manifest.json``
    of the mining run that wrote ``cfg.data``. Re-mining runs in memory (no ``out``) and never on a prebuilt index."""
    from negmine.config import build_config, read_toml

    if cfg.remine_config:
        values, source = read_toml(cfg.remine_config, "mine"), cfg.remine_config
    else:
        manifest = run_manifest(cfg.data)
        if manifest is None or manifest.get("stage") != "mine":
            raise ConfigError(
                f"remine_every needs the mining options: {cfg.data!r} has no mining manifest.json "
                "beside it; pass remine_config (a recipe TOML with a [mine] table)"
            )
        values, source = dict(manifest.get("config", {})), str(Path(cfg.data).parent / "manifest.json")
    known = {f.name for f in dataclasses.fields(MineConfig)}
    values = {k: v for k, v in values.items() if k in known}
    values.update(out="", index_dir=None, show_progress_bar=False, seed=cfg.seed)
    return build_config(MineConfig, values, {}, source=source)


class _SplitEncoder:
    """ADORE's encoder for re-mining: queries by the trained query side; documents by the frozen start model
    through the embedding cache (its entry from the start, so the corpus is not re-encoded)."""

    def __init__(self, query_encoder: Any, document_encoder: Any, cache: Any, batch_size: int) -> None:
        self.query_encoder, self.document_encoder = query_encoder, document_encoder
        self.cache, self.batch_size = cache, batch_size
        self.similarity = document_encoder.similarity

    def encode_queries(self, queries: Any, *, batch_size: int = 32, show_progress_bar: bool = False) -> Any:
        return self.query_encoder.encode_queries(queries, batch_size=batch_size)

    def encode_corpus(self, docs: Any, *, batch_size: int = 32, show_progress_bar: bool = False) -> Any:
        from negmine.encoders import encode_with_cache

        return encode_with_cache(
            self.document_encoder,
            list(docs),
            "document",
            cache=self.cache,
            batch_size=self.batch_size,
            show_progress_bar=False,
        )

    @property
    def dimension(self) -> int:
        return self.document_encoder.dimension

    def fingerprint(self) -> dict[str, Any]:
        return {
            "encoder": "adore",
            "query": self.query_encoder.fingerprint(),
            "document": self.document_encoder.fingerprint(),
        }


def _encoder(model: Any, start_model: Any, mine_cfg: MineConfig) -> tuple[Any, MineConfig]:
    """The encoder re-mining uses, and the mining options to use it with."""
    from negmine.encoders import EmbeddingCache, load_encoder

    options = dict(
        query_prompt=mine_cfg.query_prompt, corpus_prompt=mine_cfg.corpus_prompt, precision=mine_cfg.precision
    )
    if not any(type(m).__name__ == "Router" for m in model.children()):
        return load_encoder(model, **options), mine_cfg
    query_model = query_side(model)
    cache = None if mine_cfg.no_cache else EmbeddingCache(mine_cfg.cache_dir)
    encoder = _SplitEncoder(
        load_encoder(query_model, **options), load_encoder(start_model, **options), cache, mine_cfg.batch_size
    )
    return encoder, dataclasses.replace(mine_cfg, no_cache=True)  # the split encoder caches the corpus itself


@dataclass
class RoundTeacher:
    """The teacher that scores every re-mined round (:func:`round_teacher`): the built teacher, its
    :class:`~negmine.scoring.ScoreConfig` (token cap, guard) and the folder of a pairwise teacher's block cache."""

    teacher: Any
    config: Any
    out: Path


def score_manifest(data: str) -> dict[str, Any] | None:
    """The ``manifest.json`` of the ``negmine score`` run that wrote ``data`` (a file or its folder), else ``None``."""
    found = manifest_beside(data)
    return found if found is not None and found.get("stage") == "score" else None


def round_teacher(cfg: TrainConfig, data: Any) -> RoundTeacher | None:
    """The teacher for re-mined rounds when the loss reads teacher scores (``cfg.scores == "teacher"``), else
    ``None``: ``cfg.remine_teacher``, or the teacher of the ``negmine score`` run that wrote ``cfg.data``, with that
    run's settings. A bi-encoder teacher scores through the whole corpus of ``data`` (the
    :class:`~negmine.data.RetrievalData` re-mined; its cache entry is the one ``negmine mine`` / ``negmine eval``
    write), so new negatives cost no encoding once the corpus is cached."""
    from negmine.scoring import TABLE_KIND, ScoreConfig, load_teacher

    if cfg.scores != "teacher":
        return None
    manifest = score_manifest(cfg.data)
    values = dict(manifest.get("config", {})) if manifest else {}
    spec = cfg.remine_teacher or values.get("teacher")
    if not spec or str(spec).startswith(f"{TABLE_KIND}:"):
        found = f"it was scored from a table ({spec})" if spec else "no negmine score run wrote it"
        raise ConfigError(
            f"re-mining with scores='teacher': every round's new negatives need teacher scores, and {cfg.data!r} "
            f"names no teacher that can score them ({found}); set remine_teacher (--remine-teacher SPEC)"
        )
    known = {f.name for f in dataclasses.fields(ScoreConfig)}
    values = {k: v for k, v in values.items() if k in known and k != "extra"}
    out = Path(cfg.out) / "round-teacher"
    values.update(teacher=spec, mined="", out=str(out), data=None, show_progress_bar=False)
    config = ScoreConfig(**values)
    corpus = [data.doc_text(d) for d in data.corpus]
    return RoundTeacher(load_teacher(spec, config, out, corpus_texts=corpus), config, out)


def remine(
    model: Any, start_model: Any, mine_cfg: MineConfig, data: Any, judge: Any = None,
    teacher: RoundTeacher | None = None,
) -> tuple[list[MinedRecord], dict[str, float]]:
    """Mine ``data`` again with ``model`` (same options and guards as ``mine_cfg``; then ``judge``, if given, relabels
    the records; then ``teacher``, if given, scores them). Returns the records and the timings (seconds) of the
    parts."""
    from negmine.mining.api import run_mining

    start = time.perf_counter()
    encoder, cfg = _encoder(model, start_model, mine_cfg)
    was_training = model.training
    model.eval()
    try:
        result = run_mining(cfg, data=data, encoder=encoder)
    finally:
        model.train(was_training)
    timings = {k: float(v) for k, v in result.timings.items() if k != "total"}
    records = result.records
    if judge is not None:
        from negmine.relabel.api import relabel_records

        t = time.perf_counter()
        records, _, _ = relabel_records(records, judge)
        timings["judge"] = time.perf_counter() - t
    if teacher is not None:
        from negmine.scoring import score_records

        t = time.perf_counter()
        records = score_records(records, teacher.teacher, teacher.config, teacher.out)[0]
        timings["teacher"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    return records, timings


def _load_data(mine_cfg: MineConfig) -> Any:
    from negmine.data import reload_recorded

    return reload_recorded(
        mine_cfg.data,
        mine_cfg.split,
        "the mining options of re-mining",
        "pass the data to train_dynamic (data=...), or a remine_config whose [mine] table names the data",
        on_invalid=mine_cfg.on_invalid,
        unknown_qrels=mine_cfg.unknown_qrels,
        corpus=mine_cfg.corpus,
    )


def train_dynamic(
    cfg: TrainConfig,
    *,
    mine_cfg: MineConfig | None = None,
    data: Any = None,
    judge: Any = None,
    records: list[MinedRecord] | None = None,
) -> DynamicResult:
    """Train with re-mining every ``cfg.remine_every`` epochs (steps); see the module docstring.

    Args:
        cfg: the training options (``remine_every``, ``remine_unit``, ``adore``...).
        mine_cfg: the re-mining options (default: :func:`remine_config`).
        data: the :class:`~negmine.data.RetrievalData` mined (default: loaded from ``mine_cfg``); also the corpus of
            random negatives.
        judge: a relabel judge for every re-mined round (default: ``cfg.remine_judge`` loaded, if set).
        records: the first round's records (default: ``cfg.data``'s).
    """
    from negmine.io import write_json, write_manifest

    check_schedule(cfg)
    mine_cfg = remine_config(cfg) if mine_cfg is None else mine_cfg
    data = _load_data(mine_cfg) if data is None else data
    if judge is None and cfg.remine_judge:
        from negmine.relabel.factory import load_judge

        judge = load_judge(cfg.remine_judge)
    records = read_records(cfg.data) if records is None else records
    out = Path(cfg.out)
    start_model = load_model(cfg.model, cfg.max_seq_length)
    model = adore_model(start_model) if cfg.adore else start_model

    def round_config(r: int, last: bool, part: dict[str, Any]) -> TrainConfig:
        return dataclasses.replace(cfg, out=str(out / f"round-{r}"), remine_every=0, save_steps=0, seed=cfg.seed + r,
                                   eval_data=cfg.eval_data if last else None, **part)

    first = build_dataset(round_config(0, False, {}), records, corpus=data)
    steps_per_epoch = None
    if cfg.remine_unit == "step" and cfg.max_steps <= 0:  # plain training's epoch, by its trainer
        probe = build_trainer(round_config(0, False, {}), model=model, dataset=first)
        steps_per_epoch = len(probe.get_train_dataloader())
        del probe
    schedule = round_schedule(cfg, steps_per_epoch)
    teacher = round_teacher(cfg, data) if len(schedule) > 1 else None
    costs: list[RoundCost] = []
    steps = 0
    trainer = None
    for r, part in enumerate(schedule):
        last = r == len(schedule) - 1
        round_cfg = round_config(r, last, part)
        dataset = first if r == 0 else build_dataset(round_cfg, records, corpus=data)
        trainer = build_trainer(round_cfg, model=model, dataset=dataset)
        t = time.perf_counter()
        state = trainer.train()
        cost = RoundCost(r, time.perf_counter() - t, int(state.global_step))
        steps += cost.steps
        model = trainer.model
        if not last:
            records, timings = remine(model, start_model, mine_cfg, data, judge, teacher)
            write_mined(out / f"round-{r + 1}" / "mined.jsonl", records)
            cost.remine_seconds, cost.remine_parts = timings["total"], timings
            logger.info("round %d: re-mined %d queries in %.1f s", r + 1, len(records), timings["total"])
        costs.append(cost)
    assert trainer is not None
    model_dir = out / "final"
    model.save_pretrained(str(model_dir))
    metrics: dict[str, float] = {}
    if trainer.evaluator is not None:
        metrics = {k: float(v) for k, v in trainer.evaluator(model).items()}
    rounds = [{**dataclasses.asdict(c), "seconds_per_step": c.seconds_per_step} for c in costs]
    write_json(out / "dynamic.json", {"rounds": rounds, "schedule": schedule, "adore": cfg.adore})
    write_json(out / "metrics.json", {"train": {"global_step": steps}, "eval": metrics})
    write_manifest(
        out,
        "train",
        {**cfg.to_dict(), "mine_config": mine_cfg.to_dict()},
        inputs=[cfg.data] if cfg.data else [],
        seed=cfg.seed,
    )
    return DynamicResult(out, model_dir, costs, records, steps, metrics)
