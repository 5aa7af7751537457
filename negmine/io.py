"""Small I/O helpers shared by every stage: atomic writes, hashing, JSON lines, manifests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                durable: bool = True) -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and rename it into place only on success.

    A crash or Ctrl-C in the middle leaves the previous file (or none) rather than a truncated one; a failed write (a
    full disk) removes the temporary file and raises an ``OSError`` naming ``path``. The file gets the
    permissions a plain ``open`` would give it (the replaced file's, else ``0o666`` minus the umask), not the
    owner-only mode of the temporary file. ``durable=False`` skips the ``fsync`` (milliseconds a file on some disks):
    for files whose loss in a power cut only costs recomputing them (embedding cache blocks, checked when read).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    if "b" in mode:
        encoding = None
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(handle.fileno(), path.stat().st_mode & 0o777)  # a replaced file keeps its mode
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None and err.errno is not None:
            # a failed write (ENOSPC, EIO, EDQUOT) names no file: name the one that was not written
            named = OSError(err.errno, err.strerror or str(err), str(path))
            named.add_note("not written; any previous version is kept")
            raise named from err
        raise


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new, exclusively created file beside ``path``, opened with mode ``0o666`` so the kernel applies the umask
    (``tempfile.mkstemp`` would make it owner-only, and reading the umask means changing it process-wide)."""
    for _ in range(tempfile.TMP_MAX):
        tmp = str(path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


BOM = b"\xef\xbb\xbf"


def iter_text_lines(path: str | os.PathLike, on_bom: Callable[[], None] | None = None,
                    on_undecodable: Callable[[Exception], None] | None = None) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line)`` of a UTF-8 text file (``.gz`` too), the one reader of every JSONL/TSV input.

    The file is read in binary and decoded line by line, so bytes that are not UTF-8 raise a
    :class:`~negmine.errors.DataError` naming the file and line (not a ``UnicodeDecodeError`` from deep inside the
    reader). A leading UTF-8 byte-order mark (Windows tools, spreadsheet exports) is dropped and ``on_bom`` is
    called, so the caller can say so in its load report. With ``on_undecodable``, a line that is not UTF-8 is passed
    to it as that error (it may raise, or count it and return to skip the line). Lines keep their line ending.
    """
    for lineno, text, _offset, _size in iter_line_spans(path, on_bom, on_undecodable):
        yield lineno, text


def iter_line_spans(path: str | os.PathLike, on_bom: Callable[[], None] | None = None,
                    on_undecodable: Callable[[Exception], None] | None = None,
                    raw_sink: Callable[[bytes], None] | None = None) -> Iterator[tuple[int, str, int, int]]:
    """:func:`iter_text_lines` with where each line lies: ``(line number, line, byte offset, byte length)``.

    Offsets count bytes of the decompressed stream (of the file itself when it is not ``.gz``), the byte-order
    mark excluded from line 1's span, so ``json.loads`` of those bytes is the line. ``raw_sink`` receives every
    line's bytes as read (BOM included): the disk-backed corpus keeps a seekable copy of a ``.gz`` file with it.
    """
    import gzip
    import zlib

    from negmine.errors import DataError

    path = Path(path)
    try:
        handle = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except IsADirectoryError:
        raise DataError("is a folder, expected a file", path) from None
    offset = 0
    with handle:
        try:
            for lineno, raw in enumerate(handle, start=1):
                if raw_sink is not None:
                    raw_sink(raw)
                start, size = offset, len(raw)
                offset += size
                if lineno == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                    start, size = start + len(BOM), size - len(BOM)
                    if on_bom is not None:
                        on_bom()
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    error = DataError(f"not UTF-8 text (byte {err.start + 1} of the line is "
                                      f"{raw[err.start:err.start + 1]!r})", path, lineno)
                    if on_undecodable is None:
                        raise error from None
                    on_undecodable(error)
                    continue
                yield lineno, text, start, size
        except (OSError, EOFError, zlib.error) as err:  # a truncated or corrupt .gz
            if isinstance(err, FileNotFoundError):
                raise
            raise DataError(f"unreadable ({type(err).__name__}: {err})", path) from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_open(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False, default=_json_default)
        handle.write("\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=_json_default))
            handle.write("\n")
            n += 1
    return n


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


#: sha256 of files already hashed by this process, keyed by (resolved path, size, mtime_ns): a 4 GB corpus that the
#: disk-backed corpus hashed while indexing it is not read again for the manifest
_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def _file_key(path: str | os.PathLike) -> tuple[str, int, int]:
    stat = os.stat(path)
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


def remember_sha256(path: str | os.PathLike, key: tuple[str, int, int], sha256: str) -> None:
    """Record that the file at ``path`` had ``sha256`` when its (resolved path, size, mtime_ns) was ``key``;
    :func:`sha256_file` answers from it while the file keeps that size and time."""
    _SHA256_MEMO[key] = sha256


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    key = _file_key(path)
    if key in _SHA256_MEMO:
        return _SHA256_MEMO[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


CACHE_ENV = "NEGMINE_CACHE"


def default_cache_dir() -> Path:
    """negmine's cache folder: ``$NEGMINE_CACHE``, else ``~/.cache/negmine`` (embeddings, corpus indexes)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "negmine").expanduser()


def sha256_texts(texts: Iterable[str]) -> str:
    """Order-sensitive hash of a sequence of strings (length-prefixed, so ['ab'] != ['a', 'b'])."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def package_versions(
    names: Iterable[str] = (
        "negmine",
        "numpy",
        "torch",
        "sentence-transformers",
        "transformers",
        "faiss-cpu",
        "datasets",
        "mteb",
        "llama-cpp-python",
    ),
) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def hash_inputs(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """sha256 of each existing input file (folders are walked, files sorted)."""
    hashes: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.exists():
                hashes[str(file)] = sha256_file(file)
    return hashes


def write_manifest(
    out_dir: str | os.PathLike,
    stage: str,
    config: dict[str, Any],
    inputs: Iterable[str | os.PathLike] = (),
    seed: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``manifest.json``: the resolved config, package versions, input hashes and seed of one stage run."""
    manifest = {
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": sys.argv,
        "config": config,
        "seed": seed,
        "versions": package_versions(),
        "inputs": hash_inputs(inputs),
    }
    if extra:
        manifest.update(extra)
    path = Path(out_dir) / "manifest.json"
    write_json(path, manifest)
    return path
