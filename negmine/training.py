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

Training dynamics (issue 20; see README "Training dynamics"):

* ``random_negatives = K`` (STAR): ``K`` random corpus documents per row after the ``N`` hard ones
  (:mod:`negmine.data.random_negatives`), from the corpus of the run that mined the data (``corpus``, default: the
  ``data`` of the mining run's ``manifest.json``); their teacher score is ``NaN`` (unknown).
* ``batch_sampler = "ngame"`` (NGAME): batches of queries close in the start model's embedding space
  (:mod:`negmine.batching`), still without duplicate texts.
* ``adore = True`` (ADORE): an asymmetric model (sentence-transformers ``Router``) whose document side is the start
  model, frozen, and whose query side is trained (:func:`adore_model`).
* ``remine_every`` (ANCE/ADORE re-mining with the student) is run by :mod:`negmine.dynamic`, which sits above
  training and mining; :func:`train` refuses it.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negmine._st_compat import batch_samplers, checkpointing_arguments, warmup_arguments
from negmine.data.mined import SCORE_SOURCES, MinedRecord, build_rows, read_records
from negmine.errors import ConfigError

__all__ = ["BATCH_SAMPLERS", "TrainConfig", "TrainResult", "adore_model", "build_dataset", "build_evaluator",
           "build_loss", "build_rows", "build_trainer", "ngame_embeddings", "query_side",
           "random_negatives_corpus", "load_model", "num_positive_columns", "read_records", "train",
           "training_arguments"]

logger = logging.getLogger(__name__)

# losses whose frozen reference model is passed under this parameter name
_REFERENCE_PARAMETER = {"infonce": "guide", "dice": "guide", "soft-infonce": "estimator", "cwcl": "reference",
                        "mixing": "guide"}
BATCH_SAMPLERS = ("no-duplicates", "ngame")
PRECISIONS = ("fp32", "bf16", "fp16")
REMINE_UNITS = ("epoch", "step")


@dataclass
class TrainConfig:
    """Options of ``negmine train`` (the ``[train]`` table of a recipe TOML).

    Args:
        data: ``mined.jsonl`` (or a folder holding it), or a sentence-transformers n-tuple ``.jsonl``/``.parquet``
            file or folder (``Dataset.save_to_disk`` or a folder of such files).
        model: ``minilm`` (or another retriever preset name), a local model folder, or a hub id.
        loss: ``infonce``, ``soft-infonce``, ``dice``, ``cwcl``, ``mixing``, ``listwise`` or ``margin-mse``.
        out: output folder: ``checkpoints/``, the final model in ``final/``, ``manifest.json``, ``metrics.json``.
        loss_args: keyword arguments of the loss class (``temperature``, ``alpha``...); for ``mixing`` the ones
            :class:`~negmine.losses.HardNegativeMixing` does not take go to its InfoNCE base.
        reference_model: a frozen model for the loss (InfoNCE/Dice ``guide``, Soft-InfoNCE ``estimator``, CWCL
            ``reference``): a preset name, folder or hub id.
        max_positives: positive columns per row (``P``); 1 = one row per (query, positive).
        num_negatives: hard-negative columns per row (default: the fewest of any query).
        use_scores: pass the teacher scores as the ``scores`` column (needed by ``soft-infonce``/``cwcl`` with
            ``labels``, by ``listwise``/``margin-mse`` and by ``margin`` masking).
        scores: which scores of ``mined.jsonl`` fill that column: ``retriever`` (the mining retriever's, default)
            or ``teacher`` (``positive_teacher_scores``/``negative_teacher_scores`` written by ``negmine score``).
        eval_data / eval_split: BEIR folder or dataset name, and split, for in-training nDCG@10 (``None``: no eval).
            The split defaults to ``dev`` (carve one with :func:`negmine.pipeline.carve_dev_split`): choosing
            checkpoints or settings on ``test`` biases the reported test score upwards.
        eval_max_queries / eval_max_corpus: subsample the evaluation set (seeded) to keep evaluation cheap.
        save_steps: checkpoint every N steps into ``out/checkpoints`` (0: no checkpoints); also the default
            ``eval_steps``.
        epochs, max_steps, batch_size, learning_rate, warmup_ratio, weight_decay, max_seq_length, seed,
            logging_steps, save_total_limit: as in ``SentenceTransformerTrainingArguments``.
        resume_from_checkpoint: a checkpoint folder, or ``last``: the newest complete checkpoint in
            ``out/checkpoints`` (a killed run resumes there; none: a fresh start).
        random_negatives: random corpus negatives per row beside the hard ones (STAR; 0 = none).
        corpus: BEIR folder or dataset name whose corpus gives the random negatives (default: the ``data`` of the
            mining run's ``manifest.json`` beside ``data``).
        precision: ``fp32``, ``bf16`` (mixed precision: the forward and backward passes in bfloat16 under autocast,
            the weights, optimizer and loss in float32; it pays on GPUs, while on a Xeon with AVX-512 BF16 and no AMX
            a step took 0.93x fp32's speed, ``benchmarks/results/train_precision.md``) or ``fp16`` (mixed precision
            with loss scaling; CUDA only).
        gradient_checkpointing: recompute each layer's activations in the backward pass instead of keeping them
            (sentence-transformers' activation checkpointing): the same gradients for one more forward pass per
            step, and the memory of an in-batch-negatives step no longer grows with every layer. A step of 32 rows
            x 9 texts x 256 tokens through MiniLM needed over 24 GB on a CPU without it.
        batch_sampler: ``no-duplicates`` (sentence-transformers') or ``ngame`` (clustered queries, no duplicates).
        ngame_cluster_size: rows per query cluster of the ``ngame`` sampler.
        adore: train the query side only; the document side stays the start model, frozen (ADORE).
        remine_every / remine_unit: re-mine with the student every N epochs or steps (:mod:`negmine.dynamic`).
        remine_config: recipe TOML whose ``[mine]`` table sets the re-mining options (default: the mining run's
            ``manifest.json``); its false-negative guards (``cross_encoder``) apply to every round.
        remine_judge: a relabel judge run on every re-mined round (``cross-encoder:PATH``...; see ``negmine relabel``).
        remine_teacher: the teacher that scores every re-mined round when the loss reads teacher scores
            (``scores="teacher"``; a ``negmine score`` spec). Default: the teacher of the ``negmine score`` run that
            wrote ``data``, with that run's settings (token cap, guard); a ``scores:`` replay cannot score new pairs.
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
    scores: str = "retriever"
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int | None = 256
    seed: int = 42
    eval_data: str | None = None
    eval_split: str = "dev"
    eval_steps: int | None = None
    eval_batch_size: int = 64
    eval_max_queries: int | None = None
    eval_max_corpus: int | None = None
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    resume_from_checkpoint: str | None = None
    show_progress_bar: bool = True
    random_negatives: int = 0
    corpus: str | None = None
    gradient_checkpointing: bool = False
    precision: str = "fp32"
    batch_sampler: str = "no-duplicates"
    ngame_cluster_size: int = 8
    adore: bool = False
    remine_every: int = 0
    remine_unit: str = "epoch"
    remine_config: str | None = None
    remine_judge: str | None = None
    remine_teacher: str | None = None

    def __post_init__(self) -> None:
        from negmine.losses import LOSSES  # noqa: PLC0415 - torch only when a config is built

        if self.loss not in LOSSES:
            import difflib

            close = difflib.get_close_matches(self.loss, LOSSES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"loss={self.loss!r} is not a negmine loss.{hint} Choose from {', '.join(LOSSES)}")
        if self.scores not in SCORE_SOURCES:
            raise ConfigError(f"scores={self.scores!r} is not one of {', '.join(SCORE_SOURCES)}")
        if self.reference_model and self.loss not in _REFERENCE_PARAMETER:
            raise ConfigError(f"loss {self.loss!r} takes no reference model; drop reference_model")
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
        for name in ("random_negatives", "remine_every"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed; expected an integer >= 0")
        if self.ngame_cluster_size < 1:
            raise ConfigError(f"ngame_cluster_size={self.ngame_cluster_size!r} is not allowed; expected >= 1")
        from negmine.errors import check_choice

        check_choice("batch_sampler", self.batch_sampler, BATCH_SAMPLERS)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("remine_unit", self.remine_unit, REMINE_UNITS)

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


def build_dataset(cfg: TrainConfig, records: list[MinedRecord] | None = None, corpus: Any = None) -> Any:
    """The training ``datasets.Dataset`` of a config (``records`` default to ``cfg.data``'s; ``corpus``, a
    :class:`~negmine.data.RetrievalData`, defaults to :func:`random_negatives_corpus`'s with random negatives)."""
    from datasets import Dataset

    records = read_records(cfg.data, cfg.scores) if records is None else records
    num_negatives = cfg.num_negatives
    if cfg.random_negatives:
        from negmine.data.random_negatives import RandomNegatives, add_random_negatives

        corpus = random_negatives_corpus(cfg) if corpus is None else corpus
        ids = list(corpus.corpus)
        sampler = RandomNegatives(ids, [corpus.doc_text(d) for d in ids], cfg.random_negatives, cfg.seed)
        hard = min(len(r.negatives) for r in records) if num_negatives is None else num_negatives
        records = add_random_negatives(records, sampler, hard)
        num_negatives = hard + cfg.random_negatives
    rows = build_rows(records, cfg.max_positives, num_negatives, cfg.use_scores, source=cfg.data)
    return Dataset.from_list(rows)


def random_negatives_corpus(cfg: TrainConfig) -> Any:
    """The corpus random negatives come from: ``cfg.corpus``, else the data of the mining run that wrote
    ``cfg.data`` (its ``manifest.json``)."""
    from negmine.data import load_data, reload_recorded

    if cfg.corpus:
        return load_data(cfg.corpus, "train")
    mined = run_manifest(cfg.data)
    config = mined.get("config", {}) if mined else {}
    if not config.get("data"):
        raise ConfigError(f"random_negatives={cfg.random_negatives} needs a corpus: pass corpus (--corpus), or train "
                          f"on the mined.jsonl of a negmine mine run (its manifest.json names the data); "
                          f"{cfg.data!r} has none")
    return reload_recorded(config["data"], config.get("split", "train"), f"the mining manifest of {cfg.data!r}",
                           f"pass corpus (--corpus) for random_negatives={cfg.random_negatives}",
                           corpus=config.get("corpus"))


def manifest_beside(data: str) -> dict[str, Any] | None:
    """The ``manifest.json`` of the stage that wrote ``data`` (a file or its folder); ``None`` if there is none."""
    import json

    path = Path(data)
    manifest = (path if path.is_dir() else path.parent) / "manifest.json"
    if not data or not manifest.is_file():
        return None
    with open(manifest, encoding="utf-8") as handle:
        return json.load(handle)


def run_manifest(data: str) -> dict[str, Any] | None:
    """The ``manifest.json`` of the ``negmine mine`` run that wrote ``data`` (a file or its folder), following a
    ``negmine relabel`` or ``negmine score`` run back to the mined file it read; ``None`` if there is none."""
    found = manifest_beside(data)
    if found is None:
        return None
    mined = next(iter(found.get("inputs") or {}), None) if found.get("stage") in ("relabel", "score") else None
    return run_manifest(mined) if mined and Path(mined).resolve() != Path(data).resolve() else found


def num_positive_columns(dataset: Any) -> int:
    return sum(1 for c in dataset.column_names if c == "positive" or c.startswith("positive_"))


# --------------------------------------------------------------------------------------------------------------------
# model, loss, evaluator, trainer
# --------------------------------------------------------------------------------------------------------------------


def adore_model(model: Any) -> Any:
    """ADORE's asymmetric model from ``model``: a sentence-transformers ``Router`` whose ``document`` route is
    ``model``'s modules, frozen (``requires_grad = False``), and whose ``query`` route is a trainable copy of them.

    Documents keep the start model's embeddings (they never need re-encoding); only the query side learns. Train it
    with ``router_mapping`` (``anchor`` -> ``query``, every other text column -> ``document``; see
    :func:`training_arguments`)."""
    import copy

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router

    document = list(model)
    query = [copy.deepcopy(m) for m in document]
    for module in document:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    router = Router.for_query_document(query_modules=query, document_modules=document)
    out = SentenceTransformer(modules=[router], device=str(model.device))
    out.max_seq_length = model.max_seq_length
    return out


def query_side(model: Any) -> Any:
    """The model that encodes queries: ``model`` itself, or for an ADORE ``Router`` model a ``SentenceTransformer``
    over its ``query`` route (sharing its modules, so it follows training)."""
    router = next((m for m in model.children() if type(m).__name__ == "Router"), None)
    if router is None:
        return model
    from sentence_transformers import SentenceTransformer

    query = SentenceTransformer(modules=list(router.sub_modules["query"]), device=str(model.device))
    query.max_seq_length = model.max_seq_length
    return query


def load_model(name: str, max_seq_length: int | None = None, option: str = "--model") -> Any:
    """A ``SentenceTransformer`` from a preset name (``minilm``...), a local folder or a hub id, through the one model
    resolver (:func:`negmine.encoders.presets.resolve_model`): a bad path is a one-line error naming ``option``."""
    from negmine.encoders.presets import load_error, resolve_model

    resolved = resolve_model(name, option=option)  # before the heavy import: a bad path fails at once
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(resolved.location, revision=resolved.revision)
    except (OSError, ValueError) as err:
        raise load_error(option, name, err) from err
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
    try:
        if cls is HardNegativeMixing:
            own = set(inspect.signature(HardNegativeMixing.__init__).parameters) - {"self", "model", "base"}
            base_args = {k: v for k, v in args.items() if k not in own}
            base = InfoNCE(model, num_positive_columns=num_positive_columns, **_checked(InfoNCE, base_args, name))
            return HardNegativeMixing(model, base, **{k: v for k, v in args.items() if k in own})
        return cls(model, num_positive_columns=num_positive_columns, **_checked(cls, args, name))
    except (ValueError, TypeError) as err:
        if isinstance(err, ConfigError):
            raise
        # the losses validate their arguments with a plain ValueError naming the parameter ("temperature=-1 ...")
        raise ConfigError(f"--loss-arg {err} (loss {name!r})") from err


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


def training_arguments(cfg: TrainConfig, has_evaluator: bool, batch_sampler: Any = None,
                       router_mapping: dict[str, str] | None = None) -> Any:
    """Training arguments of a config; ``batch_sampler`` (default: no-duplicates) and ``router_mapping`` (ADORE)."""
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
        batch_sampler=batch_sampler or batch_samplers().NO_DUPLICATES,
        **({"router_mapping": router_mapping} if router_mapping else {}),
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_evaluator else "no",
        eval_steps=eval_steps if has_evaluator else None,
        logging_steps=cfg.logging_steps,
        report_to="none",
        dataloader_pin_memory=_has_accelerator(),
        disable_tqdm=not cfg.show_progress_bar,
        **checkpointing_arguments(cfg.gradient_checkpointing),
        **precision_arguments(cfg.precision),
    )


def precision_arguments(precision: str) -> dict[str, bool]:
    """``bf16``/``fp16`` training arguments of a :attr:`TrainConfig.precision` (fp16 needs a CUDA device: a clear
    error here rather than the trainer's)."""
    cuda = _has_accelerator()
    if precision == "fp16" and not cuda:
        raise ConfigError("precision='fp16' needs a CUDA GPU (loss scaling runs there only); use 'bf16' on a CPU")
    arguments = {"bf16": precision == "bf16", "fp16": precision == "fp16"}
    if precision == "bf16" and not cuda:
        arguments["use_cpu"] = True  # transformers runs bf16 autocast on a CPU only when told so
    return arguments


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


def ngame_embeddings(model: Any, dataset: Any, cache_dir: str | None = None, batch_size: int = 64) -> Any:
    """One query embedding per row of ``dataset`` (its ``anchor``), by ``model`` (its query side) through the embedding
    cache (keyed by the model's weights, so each checkpoint has its own entry): what
    :class:`~negmine.batching.NgameBatchSampler` clusters."""
    import numpy as np

    from negmine.encoders import EmbeddingCache
    from negmine.encoders.st import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(query_side(model))
    anchors = list(dict.fromkeys(dataset["anchor"]))
    emb = EmbeddingCache(cache_dir).get_or_encode(
        anchors, lambda texts: encoder.encode_queries(texts, batch_size=batch_size), encoder.fingerprint(), "query")
    row = {a: i for i, a in enumerate(anchors)}
    return np.asarray(emb)[[row[a] for a in dataset["anchor"]]]


def _batch_sampler(cfg: TrainConfig, model: Any, dataset: Any) -> Any:
    if cfg.batch_sampler != "ngame":
        return None
    import functools

    from negmine.batching import NgameBatchSampler

    embeddings = ngame_embeddings(model, dataset)
    return functools.partial(NgameBatchSampler, embeddings=embeddings, cluster_size=cfg.ngame_cluster_size)


def _router_mapping(dataset: Any) -> dict[str, str]:
    return {c: "query" if c == "anchor" else "document" for c in dataset.column_names if c != "scores"}


def build_trainer(cfg: TrainConfig, model: Any = None, dataset: Any = None, evaluator: Any = None) -> Any:
    """A ready ``SentenceTransformerTrainer``; ``model``/``dataset``/``evaluator`` default to the config's. With
    ``adore`` a plain model is wrapped by :func:`adore_model` (one that already has a ``Router`` is used as is)."""
    from sentence_transformers import SentenceTransformerTrainer

    dataset = build_dataset(cfg) if dataset is None else dataset
    model = load_model(cfg.model, cfg.max_seq_length) if model is None else model
    batch_sampler = _batch_sampler(cfg, model, dataset)  # the start model's query embeddings
    if cfg.adore and not _has_router(model):
        model = adore_model(model)
    reference = None
    if cfg.reference_model:
        reference = load_model(cfg.reference_model, cfg.max_seq_length, "--reference-model")
    loss = build_loss(cfg.loss, model, cfg.loss_args, num_positive_columns(dataset), reference)
    evaluator = build_evaluator(cfg) if evaluator is None else evaluator
    args = training_arguments(cfg, evaluator is not None, batch_sampler,
                              _router_mapping(dataset) if _has_router(model) else None)
    logger.info("training %s on %d rows (%s) with %s", cfg.model, len(dataset), ", ".join(dataset.column_names),
                type(loss).__name__)
    return SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator)


def last_checkpoint(out: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``out/checkpoints`` (``checkpoint-N`` holding ``trainer_state.json``, which
    the trainer writes last), or ``None``. A checkpoint cut short by a kill has no state file and is passed over."""
    folder = Path(out) / "checkpoints"
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else []:
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(step), path))
    return max(found)[1] if found else None


def resume_checkpoint(cfg: TrainConfig) -> str | None:
    """``resume_from_checkpoint``: ``last`` (the newest complete checkpoint of ``cfg.out``, or a fresh start when
    there is none), a checkpoint folder (which must exist), or ``None``."""
    value = cfg.resume_from_checkpoint
    if value is None:
        return None
    if value == "last":
        found = last_checkpoint(cfg.out)
        if found is None:
            logger.info("no checkpoint in %s/checkpoints: starting from the first step", cfg.out)
            return None
        logger.info("resuming from %s", found)
        return str(found)
    if not (Path(value) / "trainer_state.json").is_file():
        raise ConfigError(f"--resume-from-checkpoint {value}: not a complete checkpoint folder (no trainer_state.json)"
                          "; pass 'last' for the newest one in --out")
    return str(value)


def _has_router(model: Any) -> bool:
    return any(type(m).__name__ == "Router" for m in model.children())


def train(cfg: TrainConfig) -> TrainResult:
    """Train, save the final model to ``out/final`` and write ``manifest.json`` and ``metrics.json``."""
    from negmine.io import write_json, write_manifest

    if cfg.remine_every:
        raise ConfigError(f"remine_every={cfg.remine_every}: re-mining with the student is run by "
                          "negmine.dynamic.train_dynamic (negmine train does this when --remine-every is set)")
    out = Path(cfg.out)
    resume = resume_checkpoint(cfg)
    trainer = build_trainer(cfg)
    state = trainer.train(resume_from_checkpoint=resume)
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
