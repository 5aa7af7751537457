"""The same-teacher sentence-transformers peer (issue 23, ``role: "peer-teacher"``): what a sentence-transformers user
would do with a teacher stronger than the student, using sentence-transformers alone.

1. ``sentence_transformers.util.mine_hard_negatives`` with the **teacher** model (and its prompts) over the
   (query, positive) pairs of the train split, ``n-tuple`` output, optionally ``output_scores=True`` (the teacher's
   scores ``[positive, negatives...]``);
2. training the **student** with ``SentenceTransformerTrainer`` and one of
   ``MultipleNegativesRankingLoss`` (``mnrl``: the mined negatives, no scores), ``DistillKLDivLoss`` (``distill-kl``,
   the teacher's scores as labels) or ``MarginMSELoss`` (``margin-mse``, the same scores; it takes the margins).

:func:`mine_peer_teacher` and :func:`train_peer_teacher` are the two steps; :func:`peer_teacher` runs both. The
training arguments come from a :class:`negmine.training.TrainConfig` (the same trainer settings as negmine's rows:
no-duplicates batches, seed, warm-up), so only the mining and the loss differ. ``benchmarks/scifact_quality.py``
wires these into its table.

    from peers import peer_teacher
    model_dir = peer_teacher(data, teacher="embeddinggemma", student="minilm", out="runs/peer-teacher/12",
                             loss="distill-kl", train_config=cfg)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# the peer losses: short name -> sentence-transformers class (either names one)
PEER_LOSSES = {"mnrl": "MultipleNegativesRankingLoss", "distill-kl": "DistillKLDivLoss", "margin-mse": "MarginMSELoss"}


@dataclass
class PeerMining:
    """Settings of the peer's ``mine_hard_negatives`` call (issue 7's peer values by default)."""

    range_max: int = 50
    relative_margin: float | None = 0.05
    num_negatives: int = 7
    sampling_strategy: str = "top"
    batch_size: int = 32
    use_faiss: bool = True
    max_seq_length: int | None = None  # the teacher's token cap (EmbeddingGemma is encoded with one)


def teacher_prompts(teacher: str) -> tuple[str | None, str | None]:
    """``(query_prompt, corpus_prompt)`` of a teacher: a preset's (as a sentence-transformers user would copy them
    from the model card); ``(None, None)`` for a folder or hub id, or a preset without prompts."""
    from negmine.encoders.presets import PRESETS

    preset = PRESETS.get(teacher)
    if preset is None:
        return None, None
    return preset.query_prompt or None, preset.corpus_prompt or None


def mining_prompts(model: Any, teacher: str) -> dict[str, str]:
    """The prompt arguments of ``mine_hard_negatives`` for ``teacher``: the model's own ``query``/``document`` prompt
    names where it ships them (as EmbeddingGemma's card tells its users; MiniLM ships them empty), else the
    preset's prompt strings (:func:`teacher_prompts`)."""
    names = getattr(model, "prompts", None) or {}
    by_name = {f"{side}_prompt_name": name for side, name in (("query", "query"), ("corpus", "document"))
               if name in names}
    if by_name:
        return by_name
    query_prompt, corpus_prompt = teacher_prompts(teacher)
    return {key: value for key, value in (("query_prompt", query_prompt), ("corpus_prompt", corpus_prompt)) if value}


@dataclass
class PeerMined:
    """What :func:`mine_peer_teacher` returns: the ``n-tuple`` dataset, the prompt arguments it mined with and
    whether sentence-transformers read the corpus embeddings negmine's cache seeded."""

    dataset: Any
    prompts: dict[str, str]
    from_negmine_cache: bool = False


def mine_peer_teacher(data: Any, teacher: str, *, output_scores: bool = False, settings: PeerMining | None = None,
                      model_path: str | None = None, verbose: bool = False, cache_folder: str | Path | None = None,
                      seed_cache: Any = None) -> PeerMined:
    """sentence-transformers' ``mine_hard_negatives`` with the teacher over ``data``'s train pairs (a
    :class:`negmine.data.RetrievalData`), ``n-tuple`` output.

    ``cache_folder`` is sentence-transformers' own corpus-embedding cache; with ``seed_cache`` (a negmine
    :class:`~negmine.encoders.EmbeddingCache`) the corpus is first encoded through negmine's resumable cache (the
    same model, prompt and cap give the same vectors) and handed to sentence-transformers there, so a teacher's
    multi-hour corpus encode is paid once and survives a stopped run."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    settings = settings or PeerMining()
    pairs = [(data.queries[q], data.doc_text(d)) for q in data.split_query_ids for d in data.positives(q)]
    dataset = Dataset.from_dict({"query": [p[0] for p in pairs], "positive": [p[1] for p in pairs]})
    from negmine.training import load_model

    model = load_model(model_path or teacher, settings.max_seq_length)
    prompts = mining_prompts(model, teacher)
    corpus = [data.doc_text(d) for d in data.corpus]
    seed = None
    if seed_cache is not None:
        if cache_folder is None:
            raise ValueError("seed_cache needs cache_folder: the folder sentence-transformers reads the corpus from")
        from _st_cache import seed_st_cache

        from negmine.encoders import load_encoder

        encoder = load_encoder(model_path or teacher, max_seq_length=model.max_seq_length)
        seed = seed_st_cache(cache_folder, encoder, corpus, [p[1] for p in pairs], cache=seed_cache,
                             prompt=prompts.get("corpus_prompt"), prompt_name=prompts.get("corpus_prompt_name"),
                             batch_size=16, show_progress_bar=verbose)
    mined = mine_hard_negatives(dataset, model, corpus=corpus, range_max=settings.range_max,
                                relative_margin=settings.relative_margin, num_negatives=settings.num_negatives,
                                sampling_strategy=settings.sampling_strategy, output_format="n-tuple",
                                output_scores=output_scores, use_faiss=settings.use_faiss,
                                batch_size=settings.batch_size, verbose=verbose,
                                cache_folder=None if cache_folder is None else str(cache_folder), **prompts)
    if seed is not None:
        from _st_cache import loaded_from_seed

        return PeerMined(mined, prompts, loaded_from_seed(seed))
    return PeerMined(mined, prompts)


def needs_scores(loss: str) -> bool:
    """Whether a peer loss (short or class name) trains on the teacher's scores: the distillation losses do, MNRL
    does not."""
    return PEER_LOSSES.get(loss, loss) != PEER_LOSSES["mnrl"]


def peer_loss(name: str, model: Any, loss_args: dict[str, Any] | None = None) -> Any:
    """The sentence-transformers loss of a peer row (``name``: a :data:`PEER_LOSSES` short name or class name; its
    defaults unless ``loss_args`` says otherwise)."""
    from sentence_transformers.sentence_transformer import losses

    cls = PEER_LOSSES.get(name, name)
    if cls not in PEER_LOSSES.values():
        raise ValueError(f"peer loss {name!r} is not one of {', '.join([*PEER_LOSSES, *PEER_LOSSES.values()])}")
    return getattr(losses, cls)(model, **(loss_args or {}))


def train_peer_teacher(dataset: Any, cfg: Any, loss: str = "mnrl", loss_args: dict[str, Any] | None = None,
                       role: str = "peer-teacher") -> tuple[int, int]:
    """Train ``cfg.model`` on the peer's n-tuples with a sentence-transformers loss and ``cfg``'s trainer settings;
    saves ``cfg.out/final`` and a manifest; returns ``(rows, steps)``. MNRL drops a ``scores`` column; the
    distillation losses need it (``mine_peer_teacher(..., output_scores=True)``)."""
    from sentence_transformers import SentenceTransformerTrainer

    from negmine.io import write_manifest
    from negmine.training import load_model, training_arguments

    scored = needs_scores(loss)
    if not scored and "scores" in dataset.column_names:
        dataset = dataset.remove_columns("scores")
    if scored and "scores" not in dataset.column_names:
        raise ValueError(f"peer loss {loss!r} needs the teacher's scores: mine with output_scores=True")
    model = load_model(cfg.model, cfg.max_seq_length)
    trainer = SentenceTransformerTrainer(model=model, args=training_arguments(cfg, False), train_dataset=dataset,
                                         loss=peer_loss(loss, model, loss_args))
    state = trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    trainer.model.save_pretrained(str(Path(cfg.out) / "final"))
    write_manifest(cfg.out, "train", {**cfg.to_dict(), "loss": PEER_LOSSES.get(loss, loss),
                                      "loss_args": loss_args or {}, "role": role},
                   inputs=[cfg.data] if Path(cfg.data).is_file() else (), seed=cfg.seed)
    return len(dataset), int(state.global_step)


def peer_teacher(data: Any, teacher: str, cfg: Any, *, loss: str = "mnrl", loss_args: dict[str, Any] | None = None,
                 settings: PeerMining | None = None, model_path: str | None = None,
                 mined_cache: str | Path | None = None) -> Path:
    """Mine with the teacher (or reuse ``mined_cache``, an n-tuple ``.jsonl`` written by an earlier call), train the
    student ``cfg.model`` with ``loss``; returns the final model folder. Writes ``cfg.out/peer.json``."""
    from datasets import Dataset

    start = time.perf_counter()
    mined_path = Path(mined_cache) if mined_cache is not None else None
    if mined_path is not None and mined_path.is_file():
        rows = [json.loads(line) for line in mined_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        dataset = Dataset.from_list(rows)
    else:
        dataset = mine_peer_teacher(data, teacher, output_scores=needs_scores(loss), settings=settings,
                                    model_path=model_path).dataset
        if mined_path is not None:
            mined_path.parent.mkdir(parents=True, exist_ok=True)
            dataset.to_json(str(mined_path))
    mined_seconds = time.perf_counter() - start
    rows_count, steps = train_peer_teacher(dataset, cfg, loss, loss_args)
    from negmine.io import write_json

    write_json(Path(cfg.out) / "peer.json", {"role": "peer-teacher", "teacher": teacher, "loss": loss,
                                            "loss_args": loss_args or {}, "rows": rows_count, "steps": steps,
                                            "mine_seconds": mined_seconds,
                                            "seconds": time.perf_counter() - start})
    return Path(cfg.out) / "final"
