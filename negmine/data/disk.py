"""Corpora and query files that stay on disk: a one-time index over a BEIR JSONL file, reused on the next load.

``load_data(..., corpus_storage="disk")`` (CLI ``--corpus-storage disk``) gives :class:`DiskCorpus` and
:class:`DiskQueries` in place of the dicts of :func:`~negmine.data.beir.load_beir`. They are read-only mappings
(``corpus[doc_id]``, ``doc_id in corpus``, ``len(corpus)``, iteration over the ids in file order) whose memory does
not grow with the text: per row they hold a byte offset, a length and the id (numpy arrays, memory-mapped), plus for
a corpus the text-group id and the text length. A value is parsed from the file when asked for (``os.pread``, so the
page cache, not the process, holds the file). Error messages and skip counts are those of the in-memory loader:
the same validation runs once, while indexing.

The index lives under ``<cache>/corpus-index/<key>/`` (``--cache-dir``, default ``$NEGMINE_CACHE``), keyed by the
file's resolved path, size and modification time; the file's sha256, computed while indexing, is kept with it (and
given to the manifest). A ``.gz`` file is decompressed once into the index folder (offsets need a seekable file).

Layout of an index folder::

    meta.json        format, source, size, mtime_ns, sha256, rows, the load report to replay, text digests
    ids.npy          ids in file order (numpy bytes, UTF-8)        order.npy   argsort of ids (lookups: searchsorted)
    offsets.npy      byte offset of each row's line                sizes.npy   byte length of each row's line
    group.npy        corpus: text-group id per row (equal texts share one, numbered by first occurrence)
    unique_rows.npy  corpus: the first row of each group            lengths.npy corpus: characters of each text
    raw.jsonl        only for a .gz source: the decompressed file

Why this and not HF ``datasets`` / Arrow: the same strict, line-numbered validation and error messages as the
in-memory loader (Arrow's JSON reader reports neither file line nor field, and infers column types: ids that are
sometimes numbers fail or change), byte-identical mining output, no second copy of the text (Arrow's cache file is a
full re-encoding; this index is ~40 bytes a row), and lookups by id without a Python dict. Measured on 100k synthetic
passages: see ``benchmarks/pipeline_scaling.py`` and the README section "Corpora larger than memory".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from negmine.data.beir import LoadReport, _require_str, _short, doc_text, parse_document, parse_query
from negmine.errors import DataError
from negmine.io import default_cache_dir, iter_line_spans, remember_sha256, sha256_file, write_json

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1
_CHUNK_ROWS = 1 << 18  # rows collected per numpy chunk while indexing
_READ_SPAN = 16 * 2**20  # most bytes read by one pread when consecutive rows are fetched together

V = TypeVar("V")


def corpus_index_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where corpus indexes are kept: ``<cache_dir or $NEGMINE_CACHE>/corpus-index``."""
    return (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "corpus-index"


# ---------------------------------------------------------------------------------------------------------------------
# the table: ids, offsets, lookups
# ---------------------------------------------------------------------------------------------------------------------


class DiskTable(Mapping[str, V], Generic[V]):
    """A read-only ``{_id: value}`` mapping over a BEIR JSONL file, through its on-disk index (see the module doc).

    Use :meth:`open`; subclasses say how a row's JSON object becomes its value (:meth:`parse`, the validation of the
    in-memory loader) and what "no rows" is called.

    Attributes:
        built: whether :meth:`open` built the index (``False``: an existing one was reused).
        reads: values parsed from the file so far (tests use it to show what a run reads).
    """

    what: ClassVar[str] = "rows"
    has_text: ClassVar[bool] = False  # a corpus: index text groups and lengths (:meth:`row_text`)

    def __init__(self, source: Path, folder: Path, meta: dict[str, Any], built: bool) -> None:
        self.source, self.folder, self.meta, self.built = source, folder, meta, built
        self.reads = 0
        self._ids = _mapped(folder / "ids.npy")
        self._order = _mapped(folder / "order.npy")
        self._offsets = _mapped(folder / "offsets.npy")
        self._sizes = _mapped(folder / "sizes.npy")
        self._data_path = folder / "raw.jsonl" if meta["gz"] else source
        self._fd: int | None = None

    # ---------------------------------------------------------------------------------------------------- subclass
    @staticmethod
    def parse(obj: dict[str, Any], path: Path, lineno: int | None) -> Any:
        raise NotImplementedError

    @classmethod
    def row_text(cls, value: Any) -> str:
        """The text of a row whose groups and lengths are indexed (``has_text``)."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------------- open/build
    @classmethod
    def open(cls, path: str | os.PathLike, report: Any = None, on_invalid: str = "error",
             cache_dir: str | os.PathLike | None = None) -> DiskTable:
        """The table of ``path``: its index reused when one was built for this file (same path, size and
        modification time, and no skipped rows unless ``on_invalid="skip"``), else built now (one pass over the
        file, raising or skipping exactly as the in-memory loader). Skips and notes go to ``report``
        (:class:`~negmine.data.beir.LoadReport`)."""
        report = report if report is not None else LoadReport()
        source = Path(path)
        if not source.exists():
            raise DataError("no such file", path=source)
        stat = source.stat()
        resolved = str(source.resolve())
        key = hashlib.sha256(f"{INDEX_FORMAT}|{cls.__name__}|{resolved}|{stat.st_size}|{stat.st_mtime_ns}".encode()
                             ).hexdigest()
        folder = corpus_index_root(cache_dir) / key[:2] / key
        meta = _read_meta(folder)
        built = False
        if meta is None or meta.get("format") != INDEX_FORMAT or (on_invalid != "skip" and meta["skipped_total"]):
            meta = cls._build(source, folder, on_invalid, (resolved, stat.st_size, stat.st_mtime_ns))
            built = True
        else:
            logger.info("%s: reusing the index in %s", source, folder)
        for reason, count in meta["report"]["skipped"]:
            report.skipped[reason] += count
        report.notes.extend(meta["report"]["notes"])
        remember_sha256(source, (resolved, stat.st_size, stat.st_mtime_ns), meta["sha256"])
        return cls(source, folder, meta, built)

    @classmethod
    def _build(cls, source: Path, folder: Path, on_invalid: str, file_key: tuple[str, int, int]) -> dict[str, Any]:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.{os.urandom(6).hex()}.tmp"
        tmp.mkdir()
        try:
            meta = _Indexer(cls, source, tmp, on_invalid).run()
            meta.update(format=INDEX_FORMAT, source=file_key[0], size=file_key[1], mtime_ns=file_key[2])
            write_json(tmp / "meta.json", meta)
            if folder.exists():  # an index of an older format, or one built with skips
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.replace(tmp, folder)
            except OSError:  # another process put the same index in place meanwhile: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
                meta = _read_meta(folder) or meta
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("%s: indexed %d %s into %s", source, meta["rows"], cls.what, folder)
        return meta

    # ---------------------------------------------------------------------------------------------------- mapping
    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), 65536):
            yield from (i.decode("utf-8") for i in self._ids[start : start + 65536].tolist())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.row(key) >= 0

    def __getitem__(self, key: str) -> V:
        row = self.row(key) if isinstance(key, str) else -1
        if row < 0:
            raise KeyError(key)
        return self.value_at(row)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.source)!r}, {len(self):,} {self.what})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fd"] = None
        return state

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self._fd is not None:
                os.close(self._fd)

    # ---------------------------------------------------------------------------------------------------- rows
    def row(self, key: str) -> int:
        """The row of id ``key`` (file order among the indexed rows), or -1."""
        raw = key.encode("utf-8")
        if not raw or len(raw) > self._ids.dtype.itemsize or raw.endswith(b"\x00"):
            return -1
        pos = int(np.searchsorted(self._ids, raw, sorter=self._order))
        if pos < len(self) and self._ids[self._order[pos]] == raw:
            return int(self._order[pos])
        return -1

    def id_at(self, row: int) -> str:
        return self._ids[row].decode("utf-8")

    def ids(self) -> IdSequence:
        """The ids in file order, as a lazy sequence (no list of every id)."""
        return IdSequence(self)

    def value_at(self, row: int) -> V:
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} out of range 0..{len(self) - 1}")
        if self._fd is None:
            self._fd = os.open(self._data_path, os.O_RDONLY)
        offset, size = int(self._offsets[row]), int(self._sizes[row])
        buf = os.pread(self._fd, size, offset)
        if len(buf) != size:
            raise DataError(f"changed since it was indexed (in {self.folder}); load it again", self.source)
        self.reads += 1
        return self.parse(json.loads(buf.decode("utf-8")), self.source, None)

    def values_at(self, rows: Sequence[int] | np.ndarray) -> list[V]:
        """The values of ``rows`` (in that order), read from the file in offset order."""
        rows = np.asarray(rows, dtype=np.int64)
        out: list[Any] = [None] * len(rows)
        parse, loads, source = self.parse, json.loads, self.source
        for positions, lines in self._read_lines(rows):
            for position, line in zip(positions, lines):
                out[position] = parse(loads(line), source, None)
        self.reads += len(rows)
        return out

    def _read_lines(self, rows: np.ndarray) -> Iterator[tuple[list[int], list[str]]]:
        """``(positions in rows, decoded lines)`` in runs: rows whose lines lie close together in the file are read
        with one ``pread`` of at most :data:`_READ_SPAN` bytes."""
        if self._fd is None:
            self._fd = os.open(self._data_path, os.O_RDONLY)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row out of range 0..{len(self) - 1}")
        by_offset = np.argsort(self._offsets[rows], kind="stable") if rows.size > 1 else np.arange(rows.size)
        sorted_rows = rows[by_offset]
        offsets, sizes = self._offsets[sorted_rows].tolist(), self._sizes[sorted_rows].tolist()
        positions = by_offset.tolist()
        fd, i, n = self._fd, 0, len(positions)
        while i < n:
            start, j, useful = offsets[i], i + 1, sizes[i]
            while j < n:
                end = offsets[j] + sizes[j]
                if end - start > _READ_SPAN or end - start > 2 * (useful + sizes[j]):
                    break
                useful += sizes[j]
                j += 1
            stop = offsets[j - 1] + sizes[j - 1]
            buf = os.pread(fd, stop - start, start)
            if len(buf) != stop - start:
                raise DataError(f"changed since it was indexed (in {self.folder}); load it again", self.source)
            if j == i + 1:
                lines = [buf.decode("utf-8")]
            else:
                lines = [buf[o - start : o - start + s].decode("utf-8") for o, s in zip(offsets[i:j], sizes[i:j])]
            yield positions[i:j], lines
            i = j


class IdSequence(Sequence[str]):
    """The ids of a :class:`DiskTable` in file order: ``ids[i]``, ``len(ids)``, iteration; no list is built."""

    def __init__(self, table: DiskTable) -> None:
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [i.decode("utf-8") for i in self.table._ids[index].tolist()]
        return self.table.id_at(int(index))

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdSequence):
            return other.table is self.table or (len(other) == len(self) and list(other) == list(self))
        return isinstance(other, Sequence) and len(other) == len(self) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------------------------------
# corpus and queries
# ---------------------------------------------------------------------------------------------------------------------


class DiskQueries(DiskTable[str]):
    """``{query_id: text}`` of a BEIR ``queries.jsonl[.gz]``, on disk."""

    what = "queries"

    @staticmethod
    def parse(obj: dict[str, Any], path: Path, lineno: int | None) -> str:
        return parse_query(obj, path, lineno)


class DiskCorpus(DiskTable[dict[str, str]]):
    """``{doc_id: {"title", "text"}}`` of a BEIR ``corpus.jsonl[.gz]``, on disk.

    Besides the mapping it knows, without reading any text, each row's text group (rows with equal texts share one,
    numbered by first occurrence: the miner's equal-text exclusion and the de-duplicated encoding) and text length
    (the embedding cache's longest-first order); :meth:`texts` is the lazy sequence of the texts to encode.
    """

    what = "documents"
    has_text = True

    def __init__(self, source: Path, folder: Path, meta: dict[str, Any], built: bool) -> None:
        super().__init__(source, folder, meta, built)
        self.group = _mapped(folder / "group.npy")
        self.unique_rows = _mapped(folder / "unique_rows.npy")
        self._lengths = _mapped(folder / "lengths.npy")

    @staticmethod
    def parse(obj: dict[str, Any], path: Path, lineno: int | None) -> dict[str, str]:
        return parse_document(obj, path, lineno)

    @classmethod
    def row_text(cls, value: dict[str, str]) -> str:
        return doc_text(value)

    def text_at(self, row: int) -> str:
        return doc_text(self.value_at(row))

    def texts_at(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [doc_text(d) for d in self.values_at(rows)]

    def texts(self) -> DocTexts:
        """Every document's text (``title + " " + text``) in file order, as a lazy sequence."""
        return DocTexts(self, None)

    def texts_sha256(self, unique: bool) -> str:
        """:func:`negmine.io.sha256_texts` of every text (``unique=False``) or of the distinct texts in order of
        first occurrence; computed once (while indexing, or by one pass over the file) and kept in ``meta.json``."""
        name = "unique" if unique and len(self.unique_rows) < len(self) else "all"
        digests = self.meta.setdefault("texts_sha256", {})
        if name not in digests:
            from negmine.io import sha256_texts

            digests[name] = sha256_texts(DocTexts(self, None if name == "all" else np.asarray(self.unique_rows)))
            with contextlib.suppress(OSError):  # a read-only cache only loses the memo
                write_json(self.folder / "meta.json", self.meta)
        return digests[name]


class DocTexts(Sequence[str]):
    """Texts of a :class:`DiskCorpus` (all rows, or the given ``rows``), read when asked for.

    Besides ``texts[i]``, ``len`` and iteration (block reads in file order) it answers, without reading text,
    what the embedding cache asks a text sequence: :meth:`lengths` (characters per text), :meth:`take` (a block of
    texts at once) and :meth:`sha256_texts` (its cache-key digest), and :meth:`unique` for de-duplicated encoding.
    """

    def __init__(self, corpus: DiskCorpus, rows: np.ndarray | None) -> None:
        self.corpus, self.rows = corpus, rows

    def __len__(self) -> int:
        return len(self.corpus) if self.rows is None else int(self.rows.size)

    def _rows(self, positions: Any) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        return positions if self.rows is None else self.rows[positions]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        return self.corpus.text_at(int(self._rows([int(index)])[0]))

    def take(self, positions: Sequence[int] | np.ndarray) -> list[str]:
        return self.corpus.texts_at(self._rows(positions))

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), 4096):
            yield from self.take(np.arange(start, min(start + 4096, len(self))))

    def lengths(self) -> np.ndarray:
        lengths = np.asarray(self.corpus._lengths)
        return lengths if self.rows is None else lengths[self.rows]

    def sha256_texts(self) -> str:
        if self.rows is None:
            return self.corpus.texts_sha256(unique=False)
        if self.rows.size == len(self.corpus.unique_rows) and np.array_equal(self.rows, self.corpus.unique_rows):
            return self.corpus.texts_sha256(unique=True)
        from negmine.io import sha256_texts

        return sha256_texts(self)

    def unique(self) -> tuple[DocTexts, np.ndarray]:
        """The distinct texts in order of first occurrence and, per text, its position among them (the corpus's
        text groups; only for the whole corpus)."""
        if self.rows is not None:
            raise ValueError("unique() is known for the whole corpus only")
        unique = self if len(self.corpus.unique_rows) == len(self) else DocTexts(
            self.corpus, np.asarray(self.corpus.unique_rows))
        return unique, np.asarray(self.corpus.group)


# ---------------------------------------------------------------------------------------------------------------------
# building an index: the in-memory loader's validation, one pass, bounded memory
# ---------------------------------------------------------------------------------------------------------------------


class _Indexer:
    """One pass over a BEIR JSONL file that writes the index arrays into ``out`` and returns the meta.

    Validation and errors are :func:`negmine.data.beir._load_id_table`'s: in ``error`` mode the first problem in file
    order is raised (a duplicate id is found by sorting, so before raising a later problem the rows so far are checked
    for one); in ``skip`` mode every skipped row is counted under the reason the in-memory loader gives it, in the same
    order (the first valid row of an id is kept; a later row with that id, valid or not, counts as a bad ``_id``).
    """

    def __init__(self, table: type[DiskTable], source: Path, out: Path, on_invalid: str) -> None:
        self.table, self.source, self.out, self.on_invalid = table, source, out, on_invalid
        self.name = source.name
        self.events: list[tuple[int, str]] = []  # (line, reason) of each skipped row
        self.notes: list[str] = []
        self.pending: list[tuple[str, int, str]] = []  # rows with a readable id that failed validation
        self.chunks: dict[str, list[np.ndarray]] = {k: [] for k in ("ids", "lines", "offsets", "sizes", "lengths",
                                                                      "digests")}
        self.current: dict[str, list[Any]] = {k: [] for k in self.chunks}
        self.with_text = table.has_text
        self.all_texts = hashlib.sha256()

    # -------------------------------------------------------------------------------------------------------- pass
    def run(self) -> dict[str, Any]:
        gz = self.source.suffix == ".gz"
        raw = open(self.out / "raw.jsonl", "wb") if gz else None
        file_digest = hashlib.sha256()
        sink: Callable[[bytes], None] = raw.write if raw is not None else file_digest.update
        try:
            spans = iter_line_spans(self.source, on_bom=self._note_bom, on_undecodable=self._undecodable,
                                    raw_sink=sink)
            for lineno, text, offset, size in spans:
                self._row(lineno, text, offset, size)
        finally:
            if raw is not None:
                raw.close()
        self._flush()
        arrays = {k: (np.concatenate(v) if v else None) for k, v in self.chunks.items()}
        ids = arrays["ids"] if arrays["ids"] is not None else np.zeros(0, dtype="S1")
        lines = arrays["lines"] if arrays["lines"] is not None else np.zeros(0, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        keep = self._resolve_duplicates(ids, lines, order)
        for _, line, reason in self.pending:
            self.events.append((line, reason))
        if not keep.all():
            ids, kept_rows = ids[keep], np.flatnonzero(keep)
            order = np.argsort(ids, kind="stable")
        else:
            kept_rows = None
        if len(ids) == 0:
            raise DataError(f"no {self.table.what}", self.source)
        pick = (lambda a: a) if kept_rows is None else (lambda a: a[kept_rows])
        np.save(self.out / "ids.npy", ids)
        np.save(self.out / "order.npy", order.astype(np.int64))
        np.save(self.out / "offsets.npy", pick(arrays["offsets"]))
        np.save(self.out / "sizes.npy", pick(arrays["sizes"]))
        texts_sha: dict[str, str] = {}
        if self.with_text:
            group, unique_rows = first_occurrence_groups(pick(arrays["digests"]))
            np.save(self.out / "group.npy", group)
            np.save(self.out / "unique_rows.npy", unique_rows)
            np.save(self.out / "lengths.npy", pick(arrays["lengths"]))
            if kept_rows is None:  # the running digest covered exactly the indexed texts
                texts_sha["all"] = self.all_texts.hexdigest()
        skipped: dict[str, int] = {}
        for _, reason in sorted(self.events, key=lambda e: e[0]):  # the in-memory loader counts in line order
            skipped[reason] = skipped.get(reason, 0) + 1
        return {"rows": int(len(ids)), "gz": gz, "sha256": sha256_file(self.source) if gz else file_digest.hexdigest(),
                "report": {"skipped": list(skipped.items()), "notes": self.notes},
                "skipped_total": sum(skipped.values()), "texts_sha256": texts_sha}

    def _note_bom(self) -> None:
        self.notes.append(f"{self.name}: starts with a UTF-8 byte-order mark; read as utf-8-sig")

    def _undecodable(self, error: DataError) -> None:
        self._fail(error, f"{self.name}: not UTF-8")

    def _row(self, lineno: int, text: str, offset: int, size: int) -> None:
        if not text.strip():
            return
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        except (ValueError, RecursionError) as err:
            self._fail(DataError(f"malformed JSON ({_short(err)})", self.source, lineno),
                       f"{self.name}: malformed JSON")
            return
        key = None
        try:
            key = _require_str(obj, "_id", self.source, lineno)
            if key.endswith("\x00"):
                raise DataError("ends with a NUL character, which the disk-backed corpus cannot index (load it "
                                "with corpus_storage='memory')", self.source, lineno, "_id")
            value = self.table.parse(obj, self.source, lineno)
        except DataError as err:
            if key is None or err.field == "_id":
                self._fail(err, f"{self.name}: bad {err.field}")
            else:
                self._fail(err, f"{self.name}: bad {err.field}", key=key)
            return
        cur = self.current
        cur["ids"].append(key.encode("utf-8"))
        cur["lines"].append(lineno)
        cur["offsets"].append(offset)
        cur["sizes"].append(size)
        if self.with_text:
            doc = self.table.row_text(value)
            data = doc.encode("utf-8")
            self.all_texts.update(len(data).to_bytes(8, "little"))
            self.all_texts.update(data)
            cur["lengths"].append(len(doc))
            cur["digests"].append(hashlib.blake2b(data, digest_size=16).digest())
        if len(cur["ids"]) >= _CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        cur = self.current
        if not cur["ids"]:
            return
        self.chunks["ids"].append(np.array(cur["ids"], dtype=bytes))
        self.chunks["lines"].append(np.array(cur["lines"], dtype=np.int64))
        self.chunks["offsets"].append(np.array(cur["offsets"], dtype=np.int64))
        self.chunks["sizes"].append(np.array(cur["sizes"], dtype=np.int64))
        if self.with_text:
            self.chunks["lengths"].append(np.array(cur["lengths"], dtype=np.int64))
            self.chunks["digests"].append(np.frombuffer(b"".join(cur["digests"]), dtype=np.uint64).reshape(-1, 2))
        for v in cur.values():
            v.clear()

    # -------------------------------------------------------------------------------------------------------- errors
    def _fail(self, error: DataError, reason: str, key: str | None = None) -> None:
        """Raise ``error`` (``error`` mode) unless the in-memory loader would have raised another one first: a
        duplicate id among the rows so far, or this row's id already taken by a valid row; in ``skip`` mode record
        the skip (a row whose id is readable is settled at the end: it may turn out to be a duplicate)."""
        if self.on_invalid != "skip":
            self._flush()
            ids = np.concatenate(self.chunks["ids"]) if self.chunks["ids"] else np.zeros(0, dtype="S1")
            lines = np.concatenate(self.chunks["lines"]) if self.chunks["lines"] else np.zeros(0, dtype=np.int64)
            duplicate = _first_duplicate(ids, lines)
            if duplicate is not None:
                raise self._duplicate_error(*duplicate)
            if key is not None:
                raw = key.encode("utf-8")
                hits = np.flatnonzero(ids == raw) if len(ids) and len(raw) <= ids.dtype.itemsize else []
                if len(hits):
                    raise self._duplicate_error(error.line or 0, key, int(lines[hits[0]]))
            raise error
        if key is None:
            self.events.append((error.line or 0, reason))
        else:
            self.pending.append((key, error.line or 0, reason))

    def _duplicate_error(self, line: int, key: str, first_line: int) -> DataError:
        return DataError(f"duplicate id {key!r} (first seen on line {first_line})", self.source, line, "_id")

    def _resolve_duplicates(self, ids: np.ndarray, lines: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Which valid rows are kept (the first of each id); in ``error`` mode raise the earliest duplicate. Settles
        the reason of each pending invalid row: a bad ``_id`` when a valid row took its id on an earlier line."""
        keep = np.ones(len(ids), dtype=bool)
        if len(ids):
            sorted_ids = ids[order]
            repeat = np.zeros(len(ids), dtype=bool)
            repeat[1:] = sorted_ids[1:] == sorted_ids[:-1]
            if repeat.any():
                if self.on_invalid != "skip":
                    raise self._duplicate_error(*_first_duplicate(ids, lines))  # type: ignore[misc]
                keep[order[repeat]] = False
                for row in order[repeat]:
                    self.events.append((int(lines[row]), f"{self.name}: bad _id"))
        settled = []
        for key, line, reason in self.pending:
            raw = key.encode("utf-8")
            taken = False
            if len(ids) and len(raw) <= ids.dtype.itemsize:
                pos = int(np.searchsorted(ids, raw, sorter=order))
                taken = pos < len(ids) and ids[order[pos]] == raw and int(lines[order[pos]]) < line
            settled.append((key, line, f"{self.name}: bad _id" if taken else reason))
        self.pending = settled
        return keep


def _first_duplicate(ids: np.ndarray, lines: np.ndarray) -> tuple[int, str, int] | None:
    """``(line, id, line of its first occurrence)`` of the earliest row repeating an earlier row's id, or ``None``."""
    if len(ids) < 2:
        return None
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    repeat = np.zeros(len(ids), dtype=bool)
    repeat[1:] = sorted_ids[1:] == sorted_ids[:-1]
    if not repeat.any():
        return None
    run_start = np.maximum.accumulate(np.where(~repeat, np.arange(len(ids)), 0))
    candidates = np.flatnonzero(repeat)
    best = candidates[np.argmin(lines[order[candidates]])]
    return int(lines[order[best]]), sorted_ids[best].decode("utf-8"), int(lines[order[run_start[best]]])


def first_occurrence_groups(digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group ids of rows by equal ``digests`` (``(n, 2)`` uint64), numbered in order of first occurrence (as
    ``{text: groups.setdefault(text, len(groups))}`` numbers texts), and the first row of each group, ascending."""
    n = len(digests)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort((digests[:, 1], digests[:, 0]))  # stable: within a run, rows ascend
    sorted_digests = digests[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (sorted_digests[1:] != sorted_digests[:-1]).any(axis=1)
    run = np.cumsum(new) - 1
    firsts = order[new]  # the first row of each run
    rank = np.empty(len(firsts), dtype=np.int64)
    rank[np.argsort(firsts, kind="stable")] = np.arange(len(firsts))
    group = np.empty(n, dtype=np.int64)
    group[order] = rank[run]
    return group, np.sort(firsts)


def _mapped(path: Path) -> np.ndarray:
    """A saved array memory-mapped read-only, as a plain ndarray view (indexing a ``np.memmap`` costs more)."""
    return np.asarray(np.load(path, mmap_mode="r"))


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


__all__ = ["DiskCorpus", "DiskQueries", "DiskTable", "DocTexts", "IdSequence", "corpus_index_root",
           "first_occurrence_groups"]
