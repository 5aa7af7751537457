"""Persisted index folders: build once (``negmine index build``), mine many times (``negmine mine --index-dir``).

Layout of a folder::

    negmine_index.json   manifest: kind, factory, dim, metric, ntotal, the encoder fingerprint, the corpus ids hash,
                         sha256 + size of every file, the measured recall@k and the build options
    doc_ids.json         corpus ids, row i = index id i
    doc_texts.npy        one 8-byte hash of each document text (refuses a corpus whose texts changed)
    embeddings/          the document vectors as memory-mapped shards (ShardStore): positive scores when mining,
                         exact re-ranking for compressed indexes, and the data of the streamed exact index
    index/               the index itself (index.faiss + index.json), absent for ``streamed``

Building one from a dataset (encoding the corpus) and searching it belong to the layer above:
:func:`negmine.retrieve.build_index` and :meth:`negmine.retrieve.Retriever.from_index_dir`. Loading checks, before
any search: that the manifest and every file exist and match their recorded size and
(for folders up to ``verify_limit_bytes``) sha256; the dimension; that the encoder asking for it has the fingerprint
the vectors were made with (a different model, prompt, max length or precision is an error, listing what differs);
and, when given, that the corpus ids are the ones indexed and their texts the ones embedded (``doc_texts.npy``: one
8-byte hash per document, so a changed text under an unchanged id is refused, naming the documents).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from negmine.errors import NegmineError
from negmine.index.streamed import ShardStore, ShardStoreError, StreamedExactIndex

logger = logging.getLogger(__name__)

MANIFEST = "negmine_index.json"
TEXT_DIGESTS = "doc_texts.npy"
FORMAT_VERSION = 1
KINDS = ("faiss", "streamed")


class IndexStoreError(NegmineError, ValueError):
    """A persisted index folder that is missing, corrupted or does not match the model/corpus asking for it."""


def fingerprint_digest(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def doc_ids_digest(doc_ids: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for doc_id in doc_ids:
        digest.update(str(doc_id).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def doc_text_digests(texts: Sequence[str]) -> np.ndarray:
    """One uint64 per document (the first 8 bytes of the sha256 of its text): stored beside an index so that a corpus
    whose texts changed under the same ids is refused, naming the documents that differ."""
    out = np.empty(len(texts), dtype="<u8")
    for i, text in enumerate(texts):
        out[i] = int.from_bytes(hashlib.sha256(str(text).encode("utf-8")).digest()[:8], "little")
    return out


def doc_texts_digest(digests: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(digests, dtype="<u8").tobytes()).hexdigest()


def _file_table(root: Path, with_sha: bool = True) -> dict[str, dict[str, Any]]:
    from negmine.io import sha256_file

    table = {}
    files = (p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
    for path in sorted(files):
        rel = path.relative_to(root).as_posix()
        table[rel] = {"bytes": path.stat().st_size, **({"sha256": sha256_file(path)} if with_sha else {})}
    return table


@dataclass
class LoadedIndex:
    """What :func:`load_index_dir` returns."""

    index: Any
    embeddings: ShardStore
    doc_ids: list[str]
    manifest: dict[str, Any]


def build_index_dir(out: str | os.PathLike, embeddings: np.ndarray | ShardStore, doc_ids: Sequence[str], *,
                    factory: str = "Flat", metric: str = "ip", encoder_fingerprint: dict[str, Any] | None = None,
                    nprobe: int | None = None, ef_search: int | None = None, rerank: int | None = None,
                    train_size: int | None = None, seed: int = 0, queries: np.ndarray | None = None,
                    recall_queries: int = 200, recall_k: int = 100, max_memory_mb: float = 1024,
                    shard_rows: int = 1_000_000, source: str | None = None, overwrite: bool = False,
                    doc_texts: Sequence[str] | None = None) -> dict[str, Any]:
    """Build an index over ``embeddings`` and persist it with its manifest; returns the manifest.

    Args:
        out: the folder to write (must not hold an index unless ``overwrite``).
        embeddings: document vectors, row i = ``doc_ids[i]`` (an array, or a ShardStore for out-of-core corpora).
        doc_ids: corpus ids in row order.
        factory: ``streamed`` (exact, out-of-core), or a preset / FAISS factory string (``Flat``, ``ivf``,
            ``IVF4096,Flat``, ``ivfpq``, ``HNSW32``…; see :mod:`negmine.index.ann`).
        metric: ``ip`` or ``l2``.
        encoder_fingerprint: the encoder's ``fingerprint()``; recorded and checked on load.
        nprobe / ef_search / rerank / train_size / seed: ANN options (:class:`~negmine.index.ann.AnnIndex`).
        queries: query vectors for the recall measurement (default: a sample of the documents themselves).
        recall_queries / recall_k: measure recall@``recall_k`` against exact search on this many queries (0 = skip).
        max_memory_mb: memory bound of streamed exact search (the index and the recall oracle).
        shard_rows: rows per embedding shard on disk.
        source: a description of the corpus (recorded).
        overwrite: replace an existing index folder (a folder left by an interrupted build is always replaced).
        doc_texts: the texts the vectors were made from, row order; their hashes are stored (``doc_texts.npy``) and
            :func:`load_index_dir` refuses a corpus whose texts differ, even under the same ids.
    """
    from negmine.io import write_json

    out = _prepare_folder(Path(out), overwrite)
    doc_ids = [str(d) for d in doc_ids]
    n = len(embeddings)
    if n != len(doc_ids):
        raise IndexStoreError(f"{n} embeddings for {len(doc_ids)} document ids")
    if n == 0:
        raise IndexStoreError("cannot build an index over an empty corpus")
    if doc_texts is not None and len(doc_texts) != n:
        raise IndexStoreError(f"{len(doc_texts)} document texts for {n} embeddings")
    timings: dict[str, float] = {}

    t = time.perf_counter()
    store = _store_embeddings(out / "embeddings", embeddings, shard_rows)
    timings["store_embeddings_s"] = time.perf_counter() - t

    t = time.perf_counter()
    kind, index, approximate = _build_and_save(out / "index", store, factory, metric, max_memory_mb,
                                               dict(nprobe=nprobe, ef_search=ef_search, rerank=rerank,
                                                    train_size=train_size, seed=seed))
    timings["build_s"] = time.perf_counter() - t

    recall = None
    if recall_queries and approximate:
        t = time.perf_counter()
        recall = _measure_recall(index, store, queries, recall_queries, recall_k, metric, max_memory_mb, seed)
        timings["recall_s"] = time.perf_counter() - t

    write_json(out / "doc_ids.json", doc_ids)
    texts_sha = None
    if doc_texts is not None:
        from negmine.io import atomic_open

        digests = doc_text_digests(doc_texts)
        with atomic_open(out / TEXT_DIGESTS, "wb") as handle:
            np.save(handle, digests)
        texts_sha = doc_texts_digest(digests)
    manifest = {
        "format": FORMAT_VERSION, "kind": kind, "factory": index.factory if kind == "faiss" else "streamed",
        "requested_factory": factory, "dim": store.dim, "metric": metric, "ntotal": n, "approximate": approximate,
        "index_config": index.get_config_dict(), "encoder": encoder_fingerprint,
        "encoder_sha256": fingerprint_digest(encoder_fingerprint) if encoder_fingerprint is not None else None,
        "corpus": {"n": n, "doc_ids_sha256": doc_ids_digest(doc_ids), "source": source,
                   **({"doc_texts_sha256": texts_sha} if texts_sha is not None else {})},
        "recall": recall, "timings": timings, "files": _file_table(out),
    }
    write_json(out / MANIFEST, manifest)  # written last: its presence means a complete folder
    return manifest


def _prepare_folder(out: Path, overwrite: bool) -> Path:
    """Create ``out``; a complete index already there is an error unless ``overwrite`` (then its parts are removed).
    The parts of an interrupted build (no manifest) are removed, so rerunning a killed build just works."""
    parts = [out / name for name in ("index", "embeddings", "doc_ids.json", TEXT_DIGESTS)]
    if (out / MANIFEST).exists() and not overwrite:
        raise IndexStoreError(f"{out}: an index already exists there (pass overwrite / --overwrite)")
    if (out / MANIFEST).exists() or any(p.exists() for p in parts):
        if not (out / MANIFEST).exists():  # the manifest is written last: no manifest = an interrupted build
            logger.warning("%s: replacing the parts of an interrupted build", out)
        (out / MANIFEST).unlink(missing_ok=True)
        for part in parts:
            if part.is_dir():
                shutil.rmtree(part)
            else:
                part.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _store_embeddings(folder: Path, embeddings: np.ndarray | ShardStore, shard_rows: int) -> ShardStore:
    """Copy ``embeddings`` (an array or another store) into a new on-disk :class:`ShardStore`, block by block."""
    if isinstance(embeddings, ShardStore):
        store = ShardStore.create(folder, embeddings.dim, shard_rows)
        for _, block in embeddings.iter_blocks(min(shard_rows, 262_144)):
            store.append(block)
        return store
    store = ShardStore.create(folder, int(np.asarray(embeddings[:1]).shape[1]), shard_rows)
    for start in range(0, len(embeddings), shard_rows):
        store.append(np.asarray(embeddings[start:start + shard_rows], dtype=np.float32))
    return store


def _build_and_save(folder: Path, store: ShardStore, factory: str, metric: str, max_memory_mb: float,
                    ann_options: dict[str, Any]) -> tuple[str, Any, bool]:
    """Build the index over ``store`` and write it into ``folder``; returns (kind, index, approximate)."""
    from negmine.index.ann import AnnIndex, is_approximate
    from negmine.io import write_json

    if factory == "streamed":
        index = StreamedExactIndex(store, metric, max_memory_mb=max_memory_mb)
        folder.mkdir()
        write_json(folder / "index.json", {"type": "streamed", **index.get_config_dict(), "store": "../embeddings"})
        return "streamed", index, False
    index = AnnIndex(store.dim, factory, metric, refine_vectors=store, expected_size=len(store), **ann_options)
    index.add_from(store)
    index.save(folder)
    return "faiss", index, is_approximate(index.factory)


def _measure_recall(index: Any, store: ShardStore, queries: np.ndarray | None, n_queries: int, k: int, metric: str,
                    max_memory_mb: float, seed: int) -> dict[str, Any]:
    """Recall@k of ``index`` against exact search on a sample of ``queries`` (default: of the documents)."""
    from negmine.index.ann import recall_at_k, sample_queries

    n = len(store)
    if queries is None or len(queries) == 0:
        q, origin = store.rows(sample_queries(n, n_queries, seed)), "documents"
    else:
        q, origin = np.asarray(queries, dtype=np.float32)[sample_queries(len(queries), n_queries, seed)], "queries"
    k = min(k, n)
    in_ram = n * store.dim * 4 <= max_memory_mb * 2**20
    value = recall_at_k(index, store.to_array() if in_ram else store, q, k, metric=metric)
    return {"k": k, "value": value, "queries": len(q), "query_source": origin}


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    file = path / MANIFEST
    if not path.is_dir():
        raise IndexStoreError(f"{path}: no such index folder")
    if not file.exists():
        raise IndexStoreError(f"{path}: not a negmine index folder ({MANIFEST} is missing; build one with "
                              f"`negmine index build`)")
    try:
        manifest = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise IndexStoreError(f"{file}: corrupted manifest ({err})") from None
    missing = [key for key in ("format", "kind", "dim", "metric", "ntotal", "files") if key not in manifest]
    if missing:
        raise IndexStoreError(f"{file}: manifest lacks {', '.join(missing)}")
    if manifest["format"] != FORMAT_VERSION:
        raise IndexStoreError(f"{file}: index format {manifest['format']} is not supported (expected "
                              f"{FORMAT_VERSION}); rebuild the index")
    return manifest


def verify_files(path: str | os.PathLike, manifest: dict[str, Any], verify: str = "auto",
                 verify_limit_bytes: int = 4 * 2**30) -> None:
    """Check every recorded file exists with its size and (``sha256``, or ``auto`` under the limit) its hash."""
    from negmine.io import sha256_file

    if verify not in ("auto", "sha256", "size"):
        raise ValueError(f"verify must be 'auto', 'sha256' or 'size', got {verify!r}")
    path = Path(path)
    files = manifest["files"]
    total = sum(f["bytes"] for f in files.values())
    full = verify == "sha256" or (verify == "auto" and total <= verify_limit_bytes)
    if verify == "auto" and not full:
        logger.info("%s: %.1f GB of index files; checking sizes only (verify='sha256' hashes them)", path, total / 1e9)
    for rel, info in files.items():
        file = path / rel
        if not file.exists():
            raise IndexStoreError(f"{file}: missing (the index manifest lists it)")
        if file.stat().st_size != info["bytes"]:
            raise IndexStoreError(f"{file}: corrupted or truncated: {file.stat().st_size} bytes, the manifest "
                                  f"recorded {info['bytes']}")
        if full and "sha256" in info and sha256_file(file) != info["sha256"]:
            raise IndexStoreError(f"{file}: corrupted: its sha256 differs from the one recorded at build time")


def check_fingerprint(path: str | os.PathLike, manifest: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """Raise if ``fingerprint`` (the encoder that will embed the queries) is not the one the index was built with."""
    recorded = manifest.get("encoder")
    if recorded is None:
        raise IndexStoreError(f"{path}: the index records no encoder fingerprint, so it cannot be checked against "
                              f"the query encoder; rebuild it with `negmine index build`")
    recorded, current = json.loads(json.dumps(recorded, default=str)), json.loads(json.dumps(fingerprint, default=str))
    if recorded != current:
        keys = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
        detail = "; ".join(f"{k}: index {recorded.get(k)!r} vs encoder {current.get(k)!r}" for k in keys[:4])
        raise IndexStoreError(f"{path}: built with another model or encoder settings ({detail}). Queries must be "
                              f"embedded by the encoder that embedded the corpus: use the same --retriever, "
                              f"prompts, max length and --precision, or rebuild the index")


def load_index_dir(path: str | os.PathLike, *, encoder_fingerprint: dict[str, Any] | None = None,
                   dim: int | None = None, doc_ids: Sequence[str] | None = None, verify: str = "auto",
                   max_memory_mb: float | None = None, doc_texts: Sequence[str] | None = None) -> LoadedIndex:
    """Load a folder written by :func:`build_index_dir`, checking integrity and compatibility first.

    Args:
        path: the index folder.
        encoder_fingerprint: the query encoder's ``fingerprint()``; must equal the recorded one.
        dim: the query dimension; must equal the index's.
        doc_ids: the corpus ids mining will use; must equal the indexed ones (same order).
        doc_texts: the texts of those documents as they would be encoded; must be the indexed ones (an index built
            without text hashes is refused).
        verify: ``auto`` (sha256 up to 4 GiB of files, sizes above), ``sha256`` or ``size``.
        max_memory_mb: override the memory bound of a streamed index.
    """
    from negmine.index.ann import AnnIndex

    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest, verify)
    if dim is not None and int(dim) != int(manifest["dim"]):
        raise IndexStoreError(f"{path}: index dimension {manifest['dim']} does not match the encoder's dimension "
                              f"{dim} (built with another model?)")
    if encoder_fingerprint is not None:
        check_fingerprint(path, manifest, encoder_fingerprint)
    try:
        ids = json.loads((path / "doc_ids.json").read_text())
    except (OSError, ValueError) as err:
        raise IndexStoreError(f"{path / 'doc_ids.json'}: unreadable ({err})") from None
    if len(ids) != manifest["ntotal"]:
        raise IndexStoreError(f"{path / 'doc_ids.json'}: {len(ids)} ids for an index of {manifest['ntotal']}")
    if doc_ids is not None:
        doc_ids = [str(d) for d in doc_ids]
        if len(doc_ids) != len(ids) or doc_ids_digest(doc_ids) != doc_ids_digest(ids):
            raise IndexStoreError(f"{path}: indexed for another corpus ({len(ids):,} documents, ids hash "
                                  f"{doc_ids_digest(ids)[:12]}) than the one being mined ({len(doc_ids):,} documents, "
                                  f"{doc_ids_digest(doc_ids)[:12]}){_first_id_difference(ids, doc_ids)}")
    if doc_texts is not None:
        check_texts(path, manifest, ids, doc_texts)
    try:
        store = ShardStore.open(path / "embeddings")
    except ShardStoreError as err:
        raise IndexStoreError(str(err)) from None
    if store.dim != manifest["dim"] or len(store) != manifest["ntotal"]:
        raise IndexStoreError(f"{path / 'embeddings'}: holds {len(store)}×{store.dim} vectors, the manifest says "
                              f"{manifest['ntotal']}×{manifest['dim']}")
    if manifest["kind"] == "streamed":
        index = StreamedExactIndex(store, manifest["metric"], max_memory_mb=max_memory_mb or
                                   manifest.get("index_config", {}).get("max_memory_mb", 1024))
    elif manifest["kind"] == "faiss":
        try:
            index = AnnIndex.load(path / "index", refine_vectors=store)
        except (RuntimeError, ValueError, KeyError, OSError) as err:
            raise IndexStoreError(f"{path / 'index'}: cannot read the FAISS index ({err})") from None
        if index.dim != manifest["dim"] or index.ntotal != manifest["ntotal"]:
            raise IndexStoreError(f"{path / 'index'}: holds {index.ntotal}×{index.dim}, the manifest says "
                                  f"{manifest['ntotal']}×{manifest['dim']}")
    else:
        raise IndexStoreError(f"{path}: unknown index kind {manifest['kind']!r} (expected one of {KINDS})")
    return LoadedIndex(index, store, ids, manifest)


def _first_id_difference(indexed: Sequence[str], current: Sequence[str]) -> str:
    for i, (a, b) in enumerate(zip(indexed, current)):
        if a != b:
            return f"; first difference at row {i}: indexed id {a!r}, corpus id {b!r}"
    return ""


def check_texts(path: str | os.PathLike, manifest: dict[str, Any], ids: Sequence[str], doc_texts: Sequence[str]
                ) -> None:
    """Raise unless ``doc_texts`` (row order) are the texts the index was built from, naming what differs."""
    path = Path(path)
    recorded = (manifest.get("corpus") or {}).get("doc_texts_sha256")
    if recorded is None:
        raise IndexStoreError(f"{path}: the index records no hash of its document texts (built by an older negmine), "
                              f"so it cannot be checked against this corpus; rebuild it with `negmine index build "
                              f"--overwrite`")
    if len(doc_texts) != len(ids):
        raise IndexStoreError(f"{path}: indexed {len(ids):,} documents, the corpus has {len(doc_texts):,}")
    digests = doc_text_digests(doc_texts)
    if doc_texts_digest(digests) == recorded:
        return
    try:
        stored = np.load(path / TEXT_DIGESTS)
    except (OSError, ValueError) as err:
        raise IndexStoreError(f"{path / TEXT_DIGESTS}: unreadable ({err})") from None
    if stored.shape != digests.shape:
        raise IndexStoreError(f"{path / TEXT_DIGESTS}: holds {stored.shape[0]} hashes for {len(ids)} documents")
    changed = np.flatnonzero(stored != digests)
    if len(changed) == 0:  # the recorded digest and the per-document file disagree
        raise IndexStoreError(f"{path}: {TEXT_DIGESTS} does not match the manifest's doc_texts_sha256 (corrupted)")
    examples = ", ".join(repr(ids[i]) for i in changed[:5]) + (", ..." if len(changed) > 5 else "")
    raise IndexStoreError(f"{path}: built from other texts: {len(changed):,} of {len(ids):,} documents have the same "
                          f"id but a different text (e.g. {examples}); its vectors and scores would belong to the "
                          f"old texts. Rebuild the index from this corpus (negmine index build --overwrite)")
