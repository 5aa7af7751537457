"""Training: mined negatives -> a ``datasets.Dataset`` -> ``SentenceTransformerTrainer`` with a negmine loss.

The input is read as :class:`~negmine.data.mined.MinedRecord` and turned into rows by
:func:`negmine.data.mined.build_rows` (see :mod:`negmine.losses._masks` for the loss side of the convention):

* ``mined.jsonl`` (negmine's format, one record per query) becomes rows
  ``anchor, positive_1..positive_P, negative_1..negative_N[, scores]`` (``positive`` when ``P = 1``; no column name
  is a prefix of another, which sentence-transformers' column split requires). ``P = min(max_positives, most
  positives of any query)``; a query with more than ``P`` positives is split over several rows of ``P`` positives
  (same anchor and negatives; no-duplicates batching never puts two of them in one batch); a query with fewer repeats
  its first positive in the spare columns and gives them a ``NaN`` score (the losses count a repeated text once).
* A sentence-transformers n-tuple file or folder (``anchor, positive, negative_1..n[, scores]``, one row per
  (query, positive)) is read the same way: rows with the same anchor are merged into one query first.
* ``N = num_negatives`` (default: the fewest negatives of any query); queries with fewer are dropped (counted in the
  log), longer lists keep their first ``N`` (the miner's order).
* ``scores = [positive scores (P), negative scores (N)]`` when every query has teacher scores and ``use_scores``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negmine._st_compat import batch_samplers, warmup_arguments
from negmine.data.mined import build_rows, read_records
from negmine.errors import ConfigError

__all__ = ["TrainConfig", "TrainResult", "build_dataset", "build_evaluator", "build_loss", "build_rows",
           "build_trainer", "load_model", "num_positive_columns", "read_records", "train", "training_arguments"]

logger = logging.getLogger(__name__)

# losses whose frozen reference model is passed under this parameter name
_REFERENCE_PARAMETER = {"infonce": "guide", "dice": "guide", "soft-infonce": "estimator", "cwcl": "reference",
                        "mixing": "guide"}


@dataclass
class TrainConfig:
    """Options of ``negmine train`` (the ``[train]`` table of a recipe TOML).

    Args:
        data: ``mined.jsonl`` (or a folder holding it), or a sentence-transformers n-tuple ``.jsonl``/``.parquet``
            file or folder (``Dataset.save_to_disk`` or a folder of such files).
        model: ``minilm`` (or another retriever preset name), a local model folder, or a hub id.
        loss: ``infonce``, ``soft-infonce``, ``dice``, ``cwcl`` or ``mixing``.
        out: output folder: ``checkpoints/``, the final model in ``final/``, ``manifest.json``, ``metrics.json``.
        loss_args: keyword arguments of the loss class (``temperature``, ``alpha``...); for ``mixing`` the ones
            :class:`~negmine.losses.HardNegativeMixing` does not take go to its InfoNCE base.
        reference_model: a frozen model for the loss (InfoNCE/Dice ``guide``, Soft-InfoNCE ``estimator``, CWCL
            ``reference``): a preset name, folder or hub id.
        max_positives: positive columns per row (``P``); 1 = one row per (query, positive).
        num_negatives: hard-negative columns per row (default: the fewest of any query).
        use_scores: pass the teacher scores as the ``scores`` column (needed by ``soft-infonce``/``cwcl`` with
            ``labels`` and by ``margin`` masking).
        eval_data / eval_split: BEIR folder or dataset name, and split, for in-training nDCG@10 (``None``: no eval).
        eval_max_queries / eval_max_corpus: subsample the evaluation set (seeded) to keep evaluation cheap.
        save_steps: checkpoint every N steps into ``out/checkpoints`` (0: no checkpoints); also the default
            ``eval_steps``.
        epochs, max_steps, batch_size, learning_rate, warmup_ratio, weight_decay, max_seq_length, seed,
            logging_steps, save_total_limit, resume_from_checkpoint: as in ``SentenceTransformerTrainingArguments``.
    """

    data: str = ""
    model: str = "minilm"
    loss: str = "infonce"
    out: str = "runs/train"
    loss_args: dict[str, Any] = field(default_factory=dict)
    reference_model: str | None = None
    max_positives: int = 1
    num_negatives: int | None = None
    use_scores: bool = True
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int | None = 256
    seed: int = 42
    eval_data: str | None = None
    eval_split: str = "test"
    eval_steps: int | None = None
    eval_batch_size: int = 64
    eval_max_queries: int | None = None
    eval_max_corpus: int | None = None
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    resume_from_checkpoint: str | None = None
    show_progress_bar: bool = True

    def __post_init__(self) -> None:
        from negmine.losses import LOSSES  # noqa: PLC0415 - torch only when a config is built

        if self.loss not in LOSSES:
            import difflib

            close = difflib.get_close_matches(self.loss, LOSSES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"loss={self.loss!r} is not a negmine loss.{hint} Choose from {', '.join(LOSSES)}")
        if self.save_steps < 0:
            raise ConfigError(f"save_steps={self.save_steps!r} is not allowed; expected >= 0 (0 = no checkpoints)")
        for name in ("batch_size", "max_positives", "logging_steps", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed; expected an integer >= 1")
        if self.num_negatives is not None and self.num_negatives < 0:
            raise ConfigError(f"num_negatives={self.num_negatives!r} is not allowed; expected an integer >= 0")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError(f"epochs={self.epochs!r} and max_steps={self.max_steps!r}: set epochs > 0 or "
                              "max_steps > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio={self.warmup_ratio!r} is not allowed; expected a value in [0, 1)")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate={self.learning_rate!r} is not allowed; expected a value > 0")
        if not isinstance(self.loss_args, dict):
            raise ConfigError(f"loss_args={self.loss_args!r} is not allowed; expected a table of loss arguments")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides: Any) -> TrainConfig:
        """Read the ``[train]`` table of a TOML recipe (or its top level); non-``None`` overrides win."""
        from negmine.config import build_config, read_toml

        return build_config(cls, read_toml(path, "train"), overrides, source=str(path))


@dataclass
class TrainResult:
    out_dir: Path
    model_dir: Path
    num_rows: int
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------------------------


def build_dataset(cfg: TrainConfig) -> Any:
    """The training ``datasets.Dataset`` of a config."""
    from datasets import Dataset

    rows = build_rows(read_records(cfg.data), cfg.max_positives, cfg.num_negatives, cfg.use_scores)
    return Dataset.from_list(rows)


def num_positive_columns(dataset: Any) -> int:
    return sum(1 for c in dataset.column_names if c == "positive" or c.startswith("positive_"))


# --------------------------------------------------------------------------------------------------------------------
# model, loss, evaluator, trainer
# --------------------------------------------------------------------------------------------------------------------


def load_model(name: str, max_seq_length: int | None = None) -> Any:
    """A ``SentenceTransformer`` from a preset name (``minilm``...), a local folder or a hub id."""
    from sentence_transformers import SentenceTransformer

    from negmine.encoders.presets import PRESETS, resolve_model_location

    revision = None
    location = name
    if name in PRESETS:
        location, revision = resolve_model_location(PRESETS[name])
    elif Path(name).expanduser().is_dir():
        location = str(Path(name).expanduser())
    model = SentenceTransformer(location, revision=revision)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


def build_loss(name: str, model: Any, loss_args: dict[str, Any] | None = None, num_positive_columns: int = 1,
               reference: Any = None) -> Any:
    """Instantiate ``LOSSES[name]`` for ``model``; a frozen ``reference`` goes to the loss's reference parameter."""
    from negmine.losses import LOSSES, HardNegativeMixing, InfoNCE

    args = dict(loss_args or {})
    if reference is not None:
        args[_REFERENCE_PARAMETER[name]] = reference
    cls = LOSSES[name]
    if cls is HardNegativeMixing:
        own = set(inspect.signature(HardNegativeMixing.__init__).parameters) - {"self", "model", "base"}
        base_args = {k: v for k, v in args.items() if k not in own}
        base = InfoNCE(model, num_positive_columns=num_positive_columns, **_checked(InfoNCE, base_args, name))
        return HardNegativeMixing(model, base, **{k: v for k, v in args.items() if k in own})
    return cls(model, num_positive_columns=num_positive_columns, **_checked(cls, args, name))


def _checked(cls: type, args: dict[str, Any], name: str) -> dict[str, Any]:
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "num_positive_columns"}
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ConfigError(f"loss {name!r} has no argument(s) {', '.join(unknown)}; "
                          f"it takes {', '.join(sorted(allowed))}")
    return args


def build_evaluator(cfg: TrainConfig) -> Any:
    """A :class:`~negmine.evaluation.BEIREvaluator` (nDCG@10) on ``cfg.eval_data``, or ``None``."""
    if not cfg.eval_data:
        return None
    from negmine.data import load_data
    from negmine.evaluation import BEIREvaluator

    data = load_data(cfg.eval_data, cfg.eval_split)
    if cfg.eval_max_queries is not None or cfg.eval_max_corpus is not None:
        from negmine.evaluation import subsample

        data = subsample(data, cfg.eval_max_queries, cfg.eval_max_corpus, seed=cfg.seed)
    name = f"{data.name or 'beir'}-{cfg.eval_split}"
    return BEIREvaluator(data, name=name, batch_size=cfg.eval_batch_size)


def training_arguments(cfg: TrainConfig, has_evaluator: bool) -> Any:
    from sentence_transformers import SentenceTransformerTrainingArguments

    eval_steps = cfg.eval_steps or cfg.save_steps or 500
    return SentenceTransformerTrainingArguments(
        output_dir=str(Path(cfg.out) / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        **warmup_arguments(cfg.warmup_ratio),
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        data_seed=cfg.seed,
        batch_sampler=batch_samplers().NO_DUPLICATES,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_evaluator else "no",
        eval_steps=eval_steps if has_evaluator else None,
        logging_steps=cfg.logging_steps,
        report_to="none",
        dataloader_pin_memory=_has_accelerator(),
        disable_tqdm=not cfg.show_progress_bar,
    )


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


def build_trainer(cfg: TrainConfig, model: Any = None, dataset: Any = None, evaluator: Any = None) -> Any:
    """A ready ``SentenceTransformerTrainer``; ``model``/``dataset``/``evaluator`` default to the config's."""
    from sentence_transformers import SentenceTransformerTrainer

    dataset = build_dataset(cfg) if dataset is None else dataset
    model = load_model(cfg.model, cfg.max_seq_length) if model is None else model
    reference = load_model(cfg.reference_model, cfg.max_seq_length) if cfg.reference_model else None
    loss = build_loss(cfg.loss, model, cfg.loss_args, num_positive_columns(dataset), reference)
    evaluator = build_evaluator(cfg) if evaluator is None else evaluator
    args = training_arguments(cfg, evaluator is not None)
    logger.info("training %s on %d rows (%s) with %s", cfg.model, len(dataset), ", ".join(dataset.column_names),
                type(loss).__name__)
    return SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator)


def train(cfg: TrainConfig) -> TrainResult:
    """Train, save the final model to ``out/final`` and write ``manifest.json`` and ``metrics.json``."""
    from negmine.io import write_json, write_manifest

    out = Path(cfg.out)
    trainer = build_trainer(cfg)
    state = trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    model_dir = out / "final"
    trainer.model.save_pretrained(str(model_dir))
    metrics: dict[str, float] = {}
    if trainer.evaluator is not None:
        metrics = {k: float(v) for k, v in trainer.evaluator(trainer.model).items()}
    write_json(out / "metrics.json", {"train": {k: v for k, v in state.metrics.items()}, "eval": metrics})
    write_manifest(out, "train", {**cfg.to_dict(), "loss_config": _loss_config(trainer.loss)}, inputs=[cfg.data],
                   seed=cfg.seed)
    return TrainResult(out, model_dir, len(trainer.train_dataset), int(state.global_step), metrics)


def _loss_config(loss: Any) -> dict[str, Any]:
    try:
        return {k: (v if isinstance(v, (str, int, float, bool, type(None), list, tuple)) else str(v))
                for k, v in loss.get_config_dict().items()}
    except AttributeError:
        return {}
