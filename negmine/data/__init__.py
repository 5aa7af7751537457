"""Data: loading retrieval data and the files that flow between negmine's stages.

- :mod:`negmine.data.beir`: :class:`RetrievalData` (corpus, queries, qrels), BEIR folders and hub datasets.
- :mod:`negmine.data.pairs`: (query, positive[, negatives]) pair files and Hugging Face ``Dataset``s, and the rows of
  sentence-transformers training files.
- :mod:`negmine.data.mined`: ``mined.jsonl``, the record of one query's mined negatives
  (:class:`~negmine.data.mined.MinedRecord`), read and written strictly, and the one builder of
  sentence-transformers training rows.

:func:`load_data` loads any supported source into :class:`RetrievalData`. Nothing heavy is imported here.
"""

from __future__ import annotations

import os
from typing import Any, get_args

from negmine.data.beir import (
    DATA_ENV,
    QRELS_HEADER,
    Corpus,
    CorpusStorage,
    LoadReport,
    OnInvalid,
    Qrels,
    Queries,
    RetrievalData,
    UnknownQrels,
    default_data_root,
    doc_text,
    iter_jsonl,
    load_beir,
    load_beir_corpus,
    load_beir_queries,
    load_hf_beir,
    load_qrels,
    resolve_data_path,
    text_id,
)
from negmine.data.mined import MinedRecord, read_mined, read_records, write_mined
from negmine.data.pairs import NEGATIVE_COLUMNS, POSITIVE_COLUMNS, QUERY_COLUMNS, load_hf_pairs, load_pairs
from negmine.errors import ConfigError, check_choice

__all__ = [
    "DATA_ENV",
    "NEGATIVE_COLUMNS",
    "POSITIVE_COLUMNS",
    "QRELS_HEADER",
    "QUERY_COLUMNS",
    "Corpus",
    "CorpusStorage",
    "LoadReport",
    "MinedRecord",
    "OnInvalid",
    "Qrels",
    "Queries",
    "RetrievalData",
    "UnknownQrels",
    "default_data_root",
    "doc_text",
    "in_memory_label",
    "iter_jsonl",
    "load_beir",
    "load_beir_corpus",
    "load_beir_queries",
    "load_data",
    "load_hf_beir",
    "load_hf_pairs",
    "load_pairs",
    "load_qrels",
    "read_mined",
    "read_records",
    "reload_recorded",
    "resolve_data_path",
    "text_id",
    "write_mined",
]


def load_data(
    data: Any,
    split: str = "train",
    *,
    on_invalid: OnInvalid = "error",
    unknown_qrels: UnknownQrels = "error",
    corpus: str | os.PathLike | None = None,
    corpus_storage: str = "memory",
    cache_dir: str | os.PathLike | None = None,
) -> RetrievalData:
    """Load any supported source into :class:`RetrievalData`.

    Args:
        data: a BEIR folder, a dataset name under ``$NEGMINE_DATA``, a ``.jsonl``/``.parquet`` pair file, a
            Hugging Face ``Dataset`` of (query, positive[, negatives]) columns, or a hub id (``BeIR/scifact``).
        split: the qrels split of a BEIR folder (``qrels/<split>.tsv``) or hub dataset.
        on_invalid: ``"error"`` (default) raises on the first bad row; ``"skip"`` skips it and counts it in ``report``.
        unknown_qrels: what to do with qrels naming a query or document that does not exist: ``"error"``,
            ``"skip"`` (drop the row, counted) or ``"keep"`` (keep it, counted; evaluation needs this for ArguAna,
            whose official qrels name 5 documents missing from its corpus).
        corpus: for pair files, an optional BEIR ``corpus.jsonl[.gz]`` to mine negatives from.
        corpus_storage: where a BEIR folder's corpus and queries live: ``"memory"`` (dicts; the default),
            ``"disk"`` (:mod:`negmine.data.disk`: an index built once over the JSONL files, texts read when needed;
            memory does not grow with the text) or ``"auto"`` (disk for a corpus file above
            :data:`negmine.data.beir.AUTO_DISK_BYTES`). Pair files and hub datasets are always loaded in memory.
        cache_dir: where disk indexes are kept (default ``$NEGMINE_CACHE``, beside the embedding cache).
    """
    check_choice("on_invalid", on_invalid, get_args(OnInvalid))
    check_choice("unknown_qrels", unknown_qrels, get_args(UnknownQrels))
    check_choice("corpus_storage", corpus_storage, get_args(CorpusStorage))
    if not isinstance(data, (str, os.PathLike)):
        _memory_only(corpus_storage, "a Dataset of pairs")
        return load_hf_pairs(data, on_invalid=on_invalid, corpus=corpus)
    resolved = resolve_data_path(data)
    if isinstance(resolved, str):
        _memory_only(corpus_storage, "a hub dataset")
        loaded = load_hf_beir(resolved, split)
    elif resolved.is_dir():
        loaded = load_beir(resolved, split, on_invalid=on_invalid, unknown_qrels=unknown_qrels,
                           corpus_storage=corpus_storage, cache_dir=cache_dir)
    else:
        _memory_only(corpus_storage, "a pair file")
        loaded = load_pairs(resolved, on_invalid=on_invalid, corpus=corpus)
    # a pair file with a separate corpus is not reloaded from its own path alone
    loaded.origin = None if corpus is not None else str(resolved if isinstance(resolved, str) else resolved.absolute())
    return loaded


IN_MEMORY = "<in memory: "  # how a run's manifest names data handed over in memory, which it cannot reload


def in_memory_label(data: Any) -> str:
    """The manifest's name for data built or changed in memory (no :attr:`RetrievalData.origin`)."""
    return f"{IN_MEMORY}{type(data).__name__}>"


def reload_recorded(source: str, split: str, manifest: str, need: str, **options: Any) -> RetrievalData:
    """Load the data a run's manifest records, or say which option replaces it when the run was given its data in
    memory (``need``: the option to pass, e.g. ``"pass corpus (--corpus)"``)."""
    if source.startswith(IN_MEMORY) or source in {"RetrievalData", "Dataset"}:  # the last two: older manifests
        from negmine.errors import ConfigError

        raise ConfigError(f"{manifest} records data handed over in memory ({source}), which cannot be reloaded from "
                          f"it: {need}")
    return load_data(source, split, **options)


def _memory_only(corpus_storage: str, what: str) -> None:
    if corpus_storage == "disk":
        raise ConfigError(f"corpus_storage='disk' needs a BEIR folder; {what} is loaded in memory (use 'memory' or "
                          "'auto')")
