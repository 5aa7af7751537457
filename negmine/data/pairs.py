"""Pair files: ``.jsonl``/``.parquet`` files and Hugging Face ``Dataset``s of (query, positive[, negatives]) rows, and
the rows of sentence-transformers training files.

Pair files load into :class:`~negmine.data.beir.RetrievalData` (queries and documents get stable ids derived from
their text), so they can be mined like a BEIR folder. :func:`read_st_rows` reads a sentence-transformers dataset file
or folder as plain row dicts (:func:`negmine.data.mined.read_records` turns them into mined records).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from negmine.data.beir import (
    Corpus,
    LoadReport,
    OnInvalid,
    Qrels,
    Queries,
    RetrievalData,
    _invalid,
    _log_report,
    doc_text,
    iter_jsonl,
    load_beir_corpus,
    text_id,
)
from negmine.errors import DataError
from negmine.io import iter_text_lines

QUERY_COLUMNS = ("query", "anchor", "question", "sentence1")
POSITIVE_COLUMNS = ("positive", "pos", "answer", "document", "sentence2")
NEGATIVE_COLUMNS = ("negative", "neg", "negatives")


class _PairBuilder:
    """Collects (query, positive[, negatives]) rows into queries/corpus/qrels keyed by stable text ids."""

    def __init__(self, path: str, report: LoadReport, on_invalid: OnInvalid, corpus: Corpus | None = None) -> None:
        self.path, self.report, self.on_invalid = path, report, on_invalid
        self.corpus: Corpus = dict(corpus or {})
        self.by_text = {doc_text(doc): doc_id for doc_id, doc in self.corpus.items()}
        self.queries: Queries = {}
        self.qrels: Qrels = {}

    def _doc(self, text: str) -> str:
        doc_id = self.by_text.get(text)
        if doc_id is None:
            doc_id = text_id(text, "d")
            self.corpus[doc_id] = {"title": "", "text": text}
            self.by_text[text] = doc_id
        return doc_id

    def add(self, row: dict[str, Any], lineno: int) -> None:
        try:
            query = _pick_text(row, QUERY_COLUMNS, self.path, lineno)
            positives = _as_list(_pick(row, POSITIVE_COLUMNS, self.path, lineno), self.path, lineno, "positive")
            negatives = _as_list(_pick(row, NEGATIVE_COLUMNS, None, lineno), self.path, lineno, "negative")
        except DataError as err:
            _invalid(self.report, self.on_invalid, f"{Path(self.path).name}: bad {err.field}", err)
            return
        qid = text_id(query, "q")
        self.queries[qid] = query
        for text in positives:
            self.qrels.setdefault(qid, {})[self._doc(text)] = 1
        for text in negatives:  # given negatives join the corpus, so they can be mined like any other document
            self._doc(text)

    def build(self, name: str) -> RetrievalData:
        if not self.qrels:
            raise DataError("no (query, positive) rows", self.path)
        data = RetrievalData(
            self.corpus, self.queries, self.qrels, name=name, split="pairs", sources=[self.path], report=self.report
        )
        _log_report(data)
        return data


def _pick(row: dict[str, Any], names: tuple[str, ...], path: str | None, lineno: int) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    if path is None:
        return None
    raise DataError(f"missing (expected one of {', '.join(names)})", path, lineno, names[0])


def _pick_text(row: dict[str, Any], names: tuple[str, ...], path: str, lineno: int) -> str:
    value = _pick(row, names, path, lineno)
    if not isinstance(value, str) or not value.strip():
        raise DataError("empty or not a string", path, lineno, next(n for n in names if n in row))
    return value


def _as_list(value: Any, path: str, lineno: int, field_name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (str, list, tuple)):
        raise DataError(f"expected a string or a list of strings, got {type(value).__name__}", path, lineno,
                        field_name)
    values = [value] if isinstance(value, str) else list(value)
    for item in values:
        if not isinstance(item, str) or not item.strip():
            raise DataError("empty or not a string", path, lineno, field_name)
    return values


def load_pairs(
    path: str | os.PathLike, *, on_invalid: OnInvalid = "error", corpus: str | os.PathLike | None = None
) -> RetrievalData:
    """Load a ``.jsonl`` or ``.parquet`` file of (query, positive[, negatives]) rows.

    Column names follow sentence-transformers and FlagEmbedding: ``query``/``anchor``, ``positive``/``pos`` (a string
    or a list: several positives per query are allowed), ``negative``/``neg`` (optional). Queries and documents get
    stable ids derived from their text; with ``corpus`` (a BEIR corpus file) the positives are matched to it by text.
    """
    path = Path(path)
    report = LoadReport()
    base_corpus = load_beir_corpus(Path(corpus), report, on_invalid) if corpus else None
    builder = _PairBuilder(str(path), report, on_invalid, base_corpus)
    if path.suffix == ".parquet":
        pq = __import__("pyarrow.parquet", fromlist=["parquet"])
        for lineno, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            builder.add(row, lineno)
    elif path.name.endswith((".jsonl", ".jsonl.gz", ".json")):
        for lineno, row in iter_jsonl(path, report, on_invalid):
            builder.add(row, lineno)
    else:
        raise DataError("unsupported file type (expected .jsonl, .jsonl.gz or .parquet, or a BEIR folder)", path)
    return builder.build(path.stem)


def load_hf_pairs(
    dataset: Any, *, on_invalid: OnInvalid = "error", corpus: str | os.PathLike | None = None
) -> RetrievalData:
    """Load a Hugging Face ``datasets.Dataset`` of (query, positive[, negatives]) columns (row numbers are 1-based)."""
    if not hasattr(dataset, "column_names"):
        raise TypeError(f"expected a path or a datasets.Dataset, got {type(dataset).__name__}")
    report = LoadReport()
    base_corpus = load_beir_corpus(Path(corpus), report, on_invalid) if corpus else None
    name = getattr(getattr(dataset, "info", None), "dataset_name", None) or "dataset"
    builder = _PairBuilder(f"<Dataset {name}>", report, on_invalid, base_corpus)
    columns = dataset.column_names
    rename = {}
    if not any(c in columns for c in QUERY_COLUMNS) and len(columns) >= 2:
        rename = {columns[0]: "query", columns[1]: "positive"}  # sentence-transformers' positional convention
    for lineno, row in enumerate(dataset, start=1):
        builder.add({rename.get(k, k): v for k, v in row.items()}, lineno)
    return builder.build(name)


def read_st_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a sentence-transformers dataset file or folder, as dicts: a ``.jsonl``/``.parquet`` file, a folder of
    such files, or a ``Dataset.save_to_disk`` folder."""
    path = Path(path)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()):
        import datasets

        return datasets.load_from_disk(str(path)).to_list()
    files = sorted(path.glob("*.jsonl")) + sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError("no .jsonl or .parquet training file in this folder", path=path)
    rows: list[dict[str, Any]] = []
    for file in files:
        if file.suffix == ".parquet":
            import datasets

            rows.extend(datasets.Dataset.from_parquet(str(file)).to_list())
        elif file.name.endswith((".jsonl", ".json")):
            for lineno, line in iter_text_lines(file):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except (ValueError, RecursionError) as err:
                        raise DataError(f"malformed JSON ({str(err)[:200]})", file, lineno) from None
        else:
            raise DataError("unsupported file type (expected .jsonl, .parquet or a saved Dataset folder)", file)
    return rows
