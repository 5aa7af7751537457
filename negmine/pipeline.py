"""The stage runner: run a chain of stages (mine, relabel, train, evaluate) into one run folder, resumably.

- A stage whose manifest (``<out>/stage.json``) exists is skipped; the manifest is written last, atomically, so it
  exists only for a finished stage.
- A half-done stage resumes through the caches of the work it does: embeddings are cached in blocks
  (:class:`negmine.encoders.EmbeddingCache`), judge answers per sub-batch (the judge's ``cache``), training from its
  newest checkpoint (:func:`latest_checkpoint`).
- A partial relabel (only some queries judged) passes the unjudged queries through unchanged
  (:func:`merge_partial`).
- Every manifest records the git commit, the hardware, the stage's wall time and the load average sampled while it
  ran (:func:`provenance`).

:func:`carve_dev_split` makes the dev protocol's data: a seeded share of a BEIR folder's train queries becomes a
``dev`` split, written into the run folder (never into the source data), beside ``train-minus-dev``.

Nothing here prints: progress goes to the ``on_event`` callback of :class:`Pipeline`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negmine.errors import ConfigError, DataError

MANIFEST = "stage.json"
_REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------------------------
# provenance: commit, hardware, load
# --------------------------------------------------------------------------------------------------------------------


#: what benchmark runs write into a checkout (not the code they measure)
OUTPUT_PATHS = ("benchmarks/results", "*.md")


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """``HEAD``'s short hash of ``repo`` (default: negmine's checkout), with ``+dirty`` when tracked files have
    uncommitted changes; ``"unknown"`` outside a git checkout. Changes to what runs write (``benchmarks/results/``,
    Markdown files such as README's generated blocks) do not count: a rerun that rewrites its own report is still a
    run of ``HEAD``'s code."""
    cwd = Path(repo) if repo is not None else _REPO
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){p}" for p in OUTPUT_PATHS)],
                               cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# CPU features that decide which kernels faiss / torch / onnxruntime / llama.cpp use
_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
          "amx_bf16", "amx_int8", "neon", "asimd", "sve")


def hardware_info(cpuinfo: str | None = None, meminfo: str | None = None) -> dict[str, Any]:
    """CPU model, the SIMD flags that matter, logical cores, RAM, GPU and versions of this machine.

    ``cpuinfo``/``meminfo`` default to ``/proc/cpuinfo``/``/proc/meminfo`` (given for tests).
    """
    import platform

    if cpuinfo is None:
        cpuinfo = _read_text("/proc/cpuinfo")
    if meminfo is None:
        meminfo = _read_text("/proc/meminfo")
    from negmine._blas import cpu_flags

    model, flags = platform.processor() or platform.machine(), cpu_flags(cpuinfo)
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "cpu model") and model in (platform.processor(), platform.machine(),
                                                                             ""):
            model = value.strip()
    ram = None
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            ram = round(int(line.split()[1]) / 1024**2, 1)  # kB -> GiB
    info: dict[str, Any] = {"cpu": model, "cpu_flags": [f for f in _FLAGS if f in flags], "cores": os.cpu_count(),
                            "ram_gib": ram, "gpu": _gpu_name(), "python": platform.python_version()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
    return info


def hardware_text(info: Mapping[str, Any] | None = None) -> str:
    """One line: ``CPU (flags), N cores, R GiB RAM, GPU; Python, torch``."""
    info = hardware_info() if info is None else info
    flags = ", ".join(info.get("cpu_flags") or []) or "no SIMD flags listed"
    ram = f"{info['ram_gib']:g} GiB RAM" if info.get("ram_gib") else "RAM unknown"
    versions = f"Python {info.get('python')}" + (f", torch {info['torch']}" if info.get("torch") else "")
    return f"{info.get('cpu')} ({flags}), {info.get('cores')} logical cores, {ram}, {info.get('gpu')}; {versions}"


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _gpu_name() -> str:
    torch = sys.modules.get("torch")  # never import torch just to describe the machine
    try:
        if torch is not None and torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a broken CUDA setup still describes as "no GPU"
        pass
    return "no GPU"


def load_average() -> float | None:
    """The 1-minute load average (``None`` where the OS has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


class LoadSampler:
    """Sample the 1-minute load average every ``interval`` seconds while a block runs (a background thread).

    Example:
        >>> with LoadSampler(interval=0.01) as load:
        ...     _ = sum(range(1000))
        >>> sorted(load.summary())
        ['max', 'mean', 'min', 'samples']
    """

    def __init__(self, interval: float = 5.0) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        value = load_average()
        if value is not None:
            self.samples.append(value)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> LoadSampler:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="negmine-load-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def summary(self) -> dict[str, float | int | None]:
        """``{"min", "mean", "max", "samples"}`` of the sampled 1-minute load (``None`` values without samples)."""
        if not self.samples:
            return {"min": None, "mean": None, "max": None, "samples": 0}
        return {"min": round(min(self.samples), 2), "mean": round(sum(self.samples) / len(self.samples), 2),
                "max": round(max(self.samples), 2), "samples": len(self.samples)}


def provenance() -> dict[str, Any]:
    """What every manifest records about where it was produced: commit, hardware, command line, time."""
    return {"commit": git_commit(), "hardware": hardware_info(), "command": list(sys.argv),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# --------------------------------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """Run stages into folders; a stage with a manifest is skipped.

    Args:
        on_event: called with each event ``{"step", "path", "status" ("done"/"skipped"), "elapsed"}`` (a script
            prints them; the library does not).
        load_interval: seconds between load-average samples while a stage runs.

    Example:
        >>> import tempfile
        >>> runs = Path(tempfile.mkdtemp())
        >>> pipe = Pipeline()
        >>> calls = []
        >>> _ = pipe.run("count", runs / "count", lambda out: calls.append(out) or {"n": 1})
        >>> _ = pipe.run("count", runs / "count", lambda out: calls.append(out) or {"n": 1})
        >>> len(calls), [e["status"] for e in pipe.log]
        (1, ['done', 'skipped'])
    """

    on_event: Callable[[dict[str, Any]], None] | None = None
    load_interval: float = 5.0
    log: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def done(self, out: str | os.PathLike) -> bool:
        return (Path(out) / MANIFEST).is_file()

    def run(self, name: str, out: str | os.PathLike, fn: Callable[[Path], Mapping[str, Any] | None], *,
            config: Mapping[str, Any] | None = None, inputs: Iterable[str | os.PathLike] = ()) -> dict[str, Any]:
        """Run ``fn(out)`` unless ``out/stage.json`` exists; returns the stage's manifest.

        ``fn`` writes its outputs into ``out`` and returns a record (counts, paths) that goes into the manifest next
        to ``config``, the input files' sha256, the wall time, the sampled load and :func:`provenance`. An exception
        leaves no manifest, so the next run retries the stage (resuming from whatever caches ``fn`` keeps).
        """
        out = Path(out)
        manifest = out / MANIFEST
        if manifest.is_file():
            self._event(name, out, "skipped")
            return read_manifest(out)
        from negmine.io import hash_inputs, write_json

        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with LoadSampler(self.load_interval) as load:
            record = dict(fn(out) or {})
        seconds = time.perf_counter() - start
        inputs = list(inputs)
        result = {"stage": name, "seconds": seconds, "load_average": load.summary(), "config": dict(config or {}),
                  "inputs": hash_inputs(inputs) if inputs else {}, **record, **provenance()}
        write_json(manifest, result)
        self._event(name, out, "done")
        return result

    def _event(self, name: str, out: Path, status: str) -> None:
        event = {"step": name, "path": str(out), "status": status, "elapsed": time.perf_counter() - self.started}
        self.log.append(event)
        if self.on_event is not None:
            self.on_event(event)


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a finished stage folder (a clear error when it is missing or malformed)."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise DataError("the stage has not finished (no manifest)", path=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DataError(f"malformed stage manifest ({err})", path=path) from None


def latest_checkpoint(folder: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` in ``folder`` (where an interrupted training resumes), or ``None``."""
    folder = Path(folder)
    points = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return str(max(points, key=lambda p: int(p.name.split("-")[-1]))) if points else None


def merge_partial(all_records: Sequence[Mapping[str, Any]], judged: Iterable[Mapping[str, Any]],
                  key: str = "query_id") -> list[dict[str, Any]]:
    """Every record of ``all_records`` in its order, replaced by its judged version where there is one.

    A relabel run limited to some queries writes only those; training needs every query, so the unjudged ones pass
    through unchanged. A judged record whose key is not among ``all_records`` is an error (it came from another
    file).
    """
    by_key = {r[key]: dict(r) for r in judged}
    known = {r[key] for r in all_records}
    stray = sorted(set(by_key) - known)
    if stray:
        raise DataError(f"{len(stray)} judged record(s) are not in the input (e.g. {stray[:3]})", field=key)
    return [by_key.get(r[key], dict(r)) for r in all_records]


# --------------------------------------------------------------------------------------------------------------------
# the dev protocol's data
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevSplit:
    """Where a carved dev split lives and what it holds."""

    folder: Path
    dev_queries: list[str]
    train_queries: list[str]
    fraction: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "fraction": self.fraction, "seed": self.seed,
                "dev_queries": len(self.dev_queries), "train_queries": len(self.train_queries)}


DEV_SPLIT = "dev"
TRAIN_MINUS_DEV = "train-minus-dev"


def carve_dev_split(source: str | os.PathLike, out: str | os.PathLike, *, fraction: float = 0.2, seed: int = 0,
                    train_split: str = "train", link_splits: Sequence[str] = ("test",)) -> DevSplit:
    """Carve a seeded dev split out of a BEIR folder's train queries into a run folder.

    ``out`` becomes a BEIR folder over the same corpus: ``corpus``/``queries`` and the ``link_splits`` qrels are
    symbolic links to ``source`` (no data is copied), ``qrels/dev.tsv`` holds ``round(fraction * n)`` train queries
    drawn with ``random.Random(seed)`` (all their qrels rows), ``qrels/train-minus-dev.tsv`` the others; the full
    ``train`` split is deliberately absent, so nothing can train on dev queries by accident. ``split.json`` records
    the parameters; carving again with the same ones is a no-op, with other ones an error.

    Raises:
        ConfigError: ``out`` lies inside ``source`` (the shared data stays untouched), ``fraction`` is not in
            (0, 1), or ``out`` holds a split carved with other parameters.
        DataError: the train qrels are missing or malformed.
    """
    source, out = Path(source).resolve(), Path(out)
    if not 0 < fraction < 1:
        raise ConfigError(f"fraction={fraction!r} is not allowed; expected a value in (0, 1)")
    if out.resolve() == source or source in out.resolve().parents:
        raise ConfigError(f"the dev split must be written into a run folder, not inside the data folder {source}")
    qrels_path = source / "qrels" / f"{train_split}.tsv"
    header, rows = _read_qrels_rows(qrels_path)
    order = list(dict.fromkeys(qid for qid, _ in rows))
    if len(order) < 2:
        raise DataError(f"need at least 2 queries to carve a dev split, found {len(order)}", path=qrels_path)
    n_dev = min(len(order) - 1, max(1, round(fraction * len(order))))
    dev = set(random.Random(seed).sample(sorted(order), n_dev))
    params = {"source": str(source), "train_split": train_split, "fraction": fraction, "seed": seed,
              "dev_queries": n_dev, "train_queries": len(order) - n_dev,
              "train_qrels_sha256": _sha256(qrels_path)}
    record_path = out / "split.json"
    if record_path.is_file():
        previous = json.loads(record_path.read_text(encoding="utf-8"))
        if {k: previous.get(k) for k in params} != params:
            raise ConfigError(f"{out} holds a dev split carved with other parameters ({record_path}); use another "
                              "run folder or delete it")
    else:
        from negmine.io import atomic_open, write_json

        (out / "qrels").mkdir(parents=True, exist_ok=True)
        for pattern in ("corpus.jsonl*", "queries.jsonl*"):
            for file in sorted(source.glob(pattern)):
                _link(file, out / file.name)
        for split in link_splits:
            if (source / "qrels" / f"{split}.tsv").is_file():
                _link(source / "qrels" / f"{split}.tsv", out / "qrels" / f"{split}.tsv")
        for name, keep in ((DEV_SPLIT, True), (TRAIN_MINUS_DEV, False)):
            with atomic_open(out / "qrels" / f"{name}.tsv") as handle:
                handle.write(header + "\n")
                handle.writelines(line + "\n" for qid, line in rows if (qid in dev) == keep)
        write_json(record_path, {**params, "dev_query_ids": sorted(dev)})
    return DevSplit(out, [q for q in order if q in dev], [q for q in order if q not in dev], fraction, seed)


def _read_qrels_rows(path: Path) -> tuple[str, list[tuple[str, str]]]:
    if not path.is_file():
        raise DataError("no train qrels to carve a dev split from", path=path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].lower().startswith("query"):
        raise DataError("expected a qrels TSV with a 'query-id corpus-id score' header", path=path, line=1)
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise DataError(f"expected 3 tab-separated columns, found {len(parts)}", path=path, line=lineno)
        rows.append((parts[0], line))
    return lines[0], rows


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _sha256(path: Path) -> str:
    from negmine.io import sha256_file

    return sha256_file(path)
