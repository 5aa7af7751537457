"""MTEB (``mteb`` 2.x): run tasks with mteb's own evaluator, offline from a local BEIR folder too. Exporting the
results for a pull request to the MTEB results repository is :mod:`negmine.evaluation.submission`.

- :func:`local_task` builds an ``AbsTaskRetrieval`` whose data comes from a local BEIR folder. When the folder is
  a registered MTEB task (``scifact`` -> ``SciFact``), the task keeps MTEB's own metadata (name, dataset revision,
  main score, ``ignore_identical_ids``) after checking the local data is the same data (document, query, judgement
  and character counts equal MTEB's descriptive statistics), so its results are valid ``SciFact`` results.
- :class:`MTEBEncoder` (built lazily) lets mteb drive a negmine encoder; embeddings go through negmine's embedding
  cache, so a model already evaluated with ``negmine eval`` is not encoded again. Retrieval, scoring and result
  files are mteb's own (``mteb.evaluate``).
- :func:`make_model_meta` builds the explicit ``ModelMeta`` results are filed under: presets reuse MTEB's registry
  entry; any other model must name itself (``org/name``) and declare ``training_datasets`` (a model fine-tuned on
  SciFact's train split declares ``{"SciFact"}``, which marks SciFact results as not zero-shot).

``mteb`` is an optional extra (``pip install "negmine[mteb]"``); it is imported only inside these functions.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from negmine._optional import require
from negmine.data import RetrievalData, UnknownQrels, doc_text, load_data
from negmine.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def _mteb() -> Any:
    return require("mteb", "MTEB evaluation")


# --------------------------------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------------------------------


def _task_names() -> list[str]:
    """Every registered MTEB task name (mteb keeps them in its task registry)."""
    import importlib

    _mteb()
    return list(getattr(importlib.import_module("mteb.get_tasks"), "_TASKS_REGISTRY", {}))


def find_mteb_task(name: str) -> str | None:
    """The registered MTEB task name matching ``name`` case-insensitively (``scifact`` -> ``SciFact``), or None."""
    mteb = _mteb()
    try:
        return mteb.get_task(name).metadata.name
    except KeyError:
        pass
    matches = [task for task in _task_names() if task.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _local_statistics(data: RetrievalData, query_ids: Sequence[str]) -> dict[str, int]:
    return {
        "num_documents": len(data.corpus),
        "num_queries": len(query_ids),
        "number_of_characters": sum(len(doc_text(d)) for d in data.corpus.values())
        + sum(len(data.queries[q]) for q in query_ids),
        "num_relevant_docs": sum(1 for q in query_ids for rel in data.qrels[q].values() if rel > 0),
    }


def _check_same_data(task: Any, split: str, stats: dict[str, int], folder: str) -> None:
    """Compare local counts with the registered task's descriptive statistics (shipped with mteb)."""
    published = (task.metadata.descriptive_stats or {}).get(split)
    if not published:
        logger.warning("mteb ships no descriptive statistics for %s[%s]; cannot check %s is the same data",
                       task.metadata.name, split, folder)
        return
    expected = {
        "num_documents": published.get("num_documents"),
        "num_queries": published.get("num_queries"),
        "number_of_characters": published.get("number_of_characters"),
        "num_relevant_docs": (published.get("relevant_docs_statistics") or {}).get("num_relevant_docs"),
    }
    diffs = [f"{key}: local {stats[key]:,} vs MTEB {value:,}" for key, value in expected.items()
             if value is not None and stats[key] != value]
    if diffs:
        raise DataError(f"this is not the data of MTEB task {task.metadata.name!r} ({'; '.join(diffs)}); results "
                        f"filed under that name would be wrong. Pass task_name='Local{task.metadata.name}' "
                        "(CLI --task-name) to run it as a separate local task", path=folder)


def local_task(data: str | os.PathLike | RetrievalData, split: str = "test", *, task_name: str | None = None,
               unknown_qrels: UnknownQrels = "keep", ignore_identical_ids: bool | None = None,
               languages: Sequence[str] = ("eng-Latn",), verify: bool = True) -> Any:
    """An MTEB retrieval task over a local BEIR folder, evaluated by mteb's own ``RetrievalEvaluator``.

    Args:
        data: a BEIR folder (or a name under ``$NEGMINE_DATA``), or loaded :class:`RetrievalData`.
        split: the qrels split.
        task_name: the task's name. Default: the registered MTEB task matching the folder name (``scifact`` ->
            ``SciFact``), else ``Local<Folder>``. A registered name keeps MTEB's metadata, so its results can be
            submitted; the local data must then be MTEB's (checked against mteb's descriptive statistics).
        unknown_qrels: qrels naming unknown ids (``keep``, the default, scores them as MTEB does: relevant
            documents missing from the corpus stay relevant and unretrievable; ``error``; ``skip``).
        ignore_identical_ids: drop retrieved documents whose id is the query id. Default: the registered task's
            own setting (``True`` for ArguAna, ``False`` for SciFact); ``True`` for a local-only task.
        languages: ``eval_langs`` of a local-only task.
        verify: check the local data equals the registered task's (counts and characters).

    Returns:
        An ``mteb`` task instance, ready for ``mteb.evaluate``.
    """
    _mteb()  # the install hint before any work
    loaded = data if isinstance(data, RetrievalData) else load_data(data, split, unknown_qrels=unknown_qrels)
    split = loaded.split or split
    folder = loaded.sources[0].rsplit("/", 1)[0] if loaded.sources else loaded.name
    query_ids = loaded.split_query_ids
    if not query_ids:
        raise DataError(f"no query with a positive judgement in split {split!r}", path=folder)
    registered = find_mteb_task(task_name or loaded.name)
    if registered is not None:
        base_class, metadata = _registered_task(registered, loaded, query_ids, split, folder, verify)
        default_identical = base_class.ignore_identical_ids
    else:
        base_class, metadata = _unregistered_task(task_name, loaded, split, folder, languages)
        default_identical = True
    identical = default_identical if ignore_identical_ids is None else ignore_identical_ids
    dataset = {"default": {split: {**_mteb_datasets(loaded, query_ids), "top_ranked": None}}}

    def load_local(self: Any, num_proc: int | None = None, **kwargs: Any) -> None:
        if not self.data_loaded:
            self.dataset, self.data_loaded = dataset, True

    cls = type(f"{metadata.name.replace('-', '_')}FromBEIRFolder", (base_class,), {
        "metadata": metadata, "ignore_identical_ids": identical, "load_data": load_local,
        "__doc__": f"{metadata.name} read from the local BEIR folder {folder}.",
        "__module__": __name__})
    task = cls()
    task.local_folder = str(folder)  # informational
    return task


def _registered_task(name: str, loaded: RetrievalData, query_ids: Sequence[str], split: str, folder: str,
                     verify: bool) -> tuple[type, Any]:
    """The class and metadata of MTEB's own task ``name``, after checking the local data can stand for it."""
    base_task = _mteb().get_task(name)
    if base_task.metadata.type != "Retrieval":
        raise ConfigError(f"MTEB task {name!r} is a {base_task.metadata.type} task, not Retrieval")
    if split not in base_task.eval_splits:
        raise ConfigError(f"MTEB task {name!r} is evaluated on {base_task.eval_splits}, not {split!r}; "
                          f"pass task_name='Local{name}' to run split {split!r} as a local task")
    if verify:
        _check_same_data(base_task, split, _local_statistics(loaded, query_ids), folder)
    return type(base_task), base_task.metadata


def _unregistered_task(task_name: str | None, loaded: RetrievalData, split: str, folder: str,
                       languages: Sequence[str]) -> tuple[type, Any]:
    """A retrieval task class and fresh metadata for a folder MTEB does not know; the revision hashes its files."""
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    from negmine.io import hash_inputs, sha256_texts

    name = task_name or f"Local{loaded.name[:1].upper()}{loaded.name[1:]}"
    revision = sha256_texts(sorted(hash_inputs(loaded.sources).values()))[:40] if loaded.sources else "local"
    metadata = TaskMetadata(
        name=name, description=f"Local BEIR folder {folder} (split {split}), evaluated offline by negmine.",
        dataset={"path": str(folder), "revision": revision}, type="Retrieval", category="t2t",
        modalities=["text"], eval_splits=[split], eval_langs=list(languages), main_score="ndcg_at_10")
    return AbsTaskRetrieval, metadata


def _mteb_datasets(loaded: RetrievalData, query_ids: Sequence[str]) -> dict[str, Any]:
    """Corpus and queries as ``datasets.Dataset`` and the qrels as ``relevant_docs``, in mteb's split layout."""
    from datasets import Dataset

    corpus_ids = list(loaded.corpus)
    corpus = Dataset.from_dict({"id": corpus_ids, "title": [loaded.corpus[d].get("title") or "" for d in corpus_ids],
                                "text": [loaded.corpus[d].get("text") or "" for d in corpus_ids]})
    queries = Dataset.from_dict({"id": list(query_ids), "text": [loaded.queries[q] for q in query_ids]})
    relevant_docs = {q: {d: int(r) for d, r in loaded.qrels[q].items()} for q in query_ids}
    return {"corpus": corpus, "queries": queries, "relevant_docs": relevant_docs}


# --------------------------------------------------------------------------------------------------------------------
# model wrapper and metadata
# --------------------------------------------------------------------------------------------------------------------


@functools.cache
def _encoder_class() -> type:
    _mteb()
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.types import PromptType

    class MTEBEncoder(AbsEncoder):
        """A negmine encoder behind mteb's ``EncoderProtocol``; embeddings go through negmine's embedding cache."""

        def __init__(self, encoder: Any, model_meta: Any, *, cache: Any = None, batch_size: int = 32,
                     show_progress_bar: bool = False) -> None:
            self.encoder = encoder
            self.model = None  # AbsEncoder.similarity then follows mteb_model_meta.similarity_fn_name
            self.mteb_model_meta = model_meta
            self.cache, self.batch_size, self.show_progress_bar = cache, batch_size, show_progress_bar
            self.encoded_texts = 0  # texts handed to encode(), for tests and logs

        def encode(self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str,
                   prompt_type: Any = None, **kwargs: Any) -> Any:
            from negmine.retrieve import unique_encode

            texts: list[str] = []
            for batch in inputs:
                texts.extend(batch["text"])
            self.encoded_texts += len(texts)
            # queries (and symmetric tasks without a prompt type) use the query side, documents the corpus side
            kind = "document" if prompt_type == PromptType.document else "query"
            return unique_encode(self.encoder, texts, kind, self.cache, kwargs.get("batch_size") or self.batch_size,
                                 self.show_progress_bar, f"Encoding {task_metadata.name} {kind}s")

    return MTEBEncoder


def mteb_encoder(encoder: Any, model_meta: Any, *, cache: Any = True, batch_size: int = 32,
                 show_progress_bar: bool = False) -> Any:
    """Wrap a negmine :class:`~negmine.encoders.Encoder` for ``mteb.evaluate`` (``cache=True``: the default
    embedding cache; ``None``/``False``: no cache)."""
    from negmine.evaluation.beir import _resolve_cache

    return _encoder_class()(encoder, model_meta, cache=_resolve_cache(cache), batch_size=batch_size,
                            show_progress_bar=show_progress_bar)


def _check_training_datasets(names: Iterable[str]) -> set[str]:
    checked = set()
    for name in names:
        found = find_mteb_task(name)
        if found is None:
            import difflib

            close = difflib.get_close_matches(name, _task_names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"training dataset {name!r} is not an MTEB task name.{hint} training_datasets uses MTEB "
                              "task names, e.g. SciFact for a model fine-tuned on SciFact's train split")
        checked.add(found)
    return checked


def make_model_meta(encoder: Any, *, name: str | None = None, revision: str | None = None,
                    training_datasets: Iterable[str] | None = None, adapted_from: str | None = None,
                    license: str | None = None, open_weights: bool | None = None, reference: str | None = None,
                    release_date: str | None = None, languages: Sequence[str] | None = ("eng-Latn",),
                    public_training_code: str | None = None, public_training_data: str | None = None) -> Any:
    """The explicit ``mteb.ModelMeta`` a model's results are filed under.

    Args:
        encoder: a negmine encoder (``load_encoder(...)``).
        name: ``org/name``. Default for presets: the preset's hub id (MTEB's registry entry is reused, with its
            training datasets); required for any other model.
        revision: default: the preset's pinned revision, else the first 40 hex digits of the weights' sha256, so
            two different checkpoints never share a results folder.
        training_datasets: MTEB task names the model was trained on (required for non-preset models; pass ``()``
            for none). Fine-tuning on SciFact's train split means ``{"SciFact"}``. For a preset, added to the
            registry's.
        adapted_from: the base model's hub id (its training datasets count too, as MTEB resolves them).
        license / open_weights / reference / release_date / languages / public_training_code /
            public_training_data: ``ModelMeta`` fields.
    """
    mteb = _mteb()
    from mteb.models.model_meta import ModelMeta

    from negmine.encoders.presets import PRESETS

    preset = PRESETS.get(getattr(encoder, "name", "") or "")
    declared = _check_training_datasets(training_datasets) if training_datasets is not None else None
    fingerprint = encoder.fingerprint()
    registry_meta = None
    if preset is not None and (name is None or name == preset.model):
        try:
            registry_meta = mteb.get_model_meta(preset.model, revision=revision or preset.revision,
                                                fetch_from_hf=False)
        except (KeyError, ValueError):
            registry_meta = None
    if registry_meta is not None:
        update: dict[str, Any] = {"revision": revision or preset.revision}
        if declared:
            update["training_datasets"] = set(registry_meta.training_datasets or set()) | declared
        return registry_meta.model_copy(update=update)
    if name is None:
        raise ConfigError("name the model for MTEB as org/name (CLI --name), e.g. myorg/minilm-scifact-negmine")
    if "/" not in name:
        raise ConfigError(f"MTEB model names are org/name, got {name!r}")
    if declared is None:
        raise ConfigError(f"declare what {name} was trained on (CLI --training-dataset, MTEB task names such as "
                          "SciFact for SciFact's train split; --training-dataset none if it saw no MTEB data): "
                          "MTEB marks results on those tasks as not zero-shot")
    model = getattr(encoder, "model", None)
    n_parameters = sum(p.numel() for p in model.parameters()) if model is not None else None
    if adapted_from is None and model is not None:
        card = getattr(model, "model_card_data", None)
        base = getattr(card, "base_model", None) or None
        # a hub id (org/name) only: a local path means nothing in the results repository
        adapted_from = base if isinstance(base, str) and base.count("/") == 1 and not Path(base).exists() else None
    prompts = bool(fingerprint.get("query_prompt") or fingerprint.get("corpus_prompt"))
    return ModelMeta(
        loader=None, name=name, revision=revision or fingerprint.get("weights_sha256", "")[:40] or "local",
        release_date=release_date or datetime.date.today().isoformat(),
        languages=list(languages) if languages else None, n_parameters=n_parameters, memory_usage_mb=None,
        max_tokens=fingerprint.get("max_seq_length") or None,
        embed_dim=int(getattr(encoder, "dimension", 0)) or None, license=license, open_weights=open_weights,
        public_training_code=public_training_code, public_training_data=public_training_data,
        framework=["Sentence Transformers", "PyTorch"], reference=reference,
        similarity_fn_name=getattr(encoder, "similarity", "cosine"), use_instructions=prompts,
        training_datasets=declared, adapted_from=adapted_from)


# --------------------------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------------------------


def resolve_tasks(tasks: Iterable[Any] = (), data: Iterable[str | os.PathLike] = (), *, split: str = "test",
                  task_name: str | None = None, unknown_qrels: UnknownQrels = "keep") -> list[Any]:
    """Task objects from MTEB names (downloaded by mteb: online) and local BEIR folders (offline)."""
    mteb = _mteb()
    resolved: list[Any] = []
    names = [t for t in tasks if isinstance(t, str)]
    resolved.extend(t for t in tasks if not isinstance(t, str))
    for name in names:
        found = find_mteb_task(name)
        if found is None:
            mteb.get_task(name)  # raises KeyError with mteb's "did you mean"
        resolved.append(mteb.get_task(found))
    folders = list(data)
    if task_name is not None and len(folders) != 1:
        raise ConfigError(f"--task-name names one local folder, got {len(folders)} --data folders")
    for folder in folders:
        resolved.append(local_task(folder, split, task_name=task_name, unknown_qrels=unknown_qrels))
    if not resolved:
        raise ConfigError("no task: pass MTEB task names (online) and/or local BEIR folders (offline)")
    return resolved


def evaluate_mteb(model: Any, tasks: Iterable[Any] = (), *, data: Iterable[str | os.PathLike] = (),
                  split: str = "test", task_name: str | None = None, model_meta: Any = None,
                  output_folder: str | os.PathLike | None = None, batch_size: int = 32, cache: Any = True,
                  model_path: str | os.PathLike | None = None, unknown_qrels: UnknownQrels = "keep",
                  show_progress_bar: bool = False, **meta_kwargs: Any) -> Any:
    """Run MTEB tasks with ``mteb.evaluate`` (mteb's own retrieval and scoring) on a negmine model.

    Args:
        model: preset, model folder, hub id, ``SentenceTransformer`` or negmine ``Encoder``.
        tasks: MTEB task names (``"SciFact"``; mteb downloads the data, so this needs network access) or task
            objects (e.g. :func:`local_task`).
        data: local BEIR folders, each run as :func:`local_task` (offline).
        split / task_name / unknown_qrels: passed to :func:`local_task` for ``data``.
        model_meta: an explicit ``mteb.ModelMeta``; default :func:`make_model_meta` with ``meta_kwargs``
            (``name``, ``revision``, ``training_datasets``, ``adapted_from``…).
        output_folder: results go to ``<output_folder>/results/<org__name>/<revision>/<Task>.json`` (mteb's
            ``ResultCache`` layout, with ``model_meta.json``); ``None`` saves nothing.
        batch_size: encoding batch size.
        cache: negmine's embedding cache (``True``: default folder; ``False``: off).
        show_progress_bar: progress bars.

    Returns:
        mteb's ``ModelResult`` (``.task_results[i].get_score()`` is the main score, nDCG@10 for retrieval).
    """
    mteb = _mteb()
    from negmine.evaluation.beir import resolve_encoder

    encoder = resolve_encoder(model, model_path=model_path)
    meta = model_meta if model_meta is not None else make_model_meta(encoder, **meta_kwargs)
    task_list = resolve_tasks(tasks, data, split=split, task_name=task_name, unknown_qrels=unknown_qrels)
    trained_on = meta.get_training_datasets() or set()
    for task in task_list:
        if task.metadata.name in trained_on:
            logger.warning("%s was trained on %s: its results there are not zero-shot", meta.name, task.metadata.name)
    wrapper = mteb_encoder(encoder, meta, cache=cache, batch_size=batch_size, show_progress_bar=show_progress_bar)
    result_cache = mteb.ResultCache(cache_path=Path(output_folder)) if output_folder is not None else None
    try:
        return mteb.evaluate(wrapper, task_list, cache=result_cache, overwrite_strategy="always",
                             encode_kwargs={"batch_size": batch_size, "show_progress_bar": show_progress_bar},
                             co2_tracker=False, show_progress_bar=show_progress_bar)
    except ConnectionError as err:  # a named task whose data mteb must download
        remote = [t.metadata.name for t in task_list if not hasattr(t, "local_folder")]
        raise DataError(f"could not download the data of MTEB task(s) {', '.join(remote)} ({err}). Offline, run "
                        "them from local BEIR folders instead: --data DIR (e.g. --data ../shared/data/beir/scifact "
                        "runs as SciFact)") from err


def scores_of(model_result: Any) -> dict[str, dict[str, Any]]:
    """``task -> {split: {"main_score": ..., "ndcg_at_10": ...}}`` from an mteb ``ModelResult``."""
    out: dict[str, dict[str, Any]] = {}
    for task_result in model_result.task_results:
        out[task_result.task_name] = {split: dict(entries[0]) for split, entries in task_result.scores.items()
                                      if entries}
    return out
