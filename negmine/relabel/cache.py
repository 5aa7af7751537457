"""A JSON-lines cache of raw judge outputs, so an interrupted run resumes and a rerun costs nothing.

Each line is ``{"key": ..., "value": {...}}``, appended and flushed as soon as a call finishes. The key is the
sha256 of (judge config, prompt version, call kind, query, passage(s)), so changing the model, a generation setting
or a prompt misses the cache instead of reusing stale answers. Values are *raw* outputs (text and token counts), so
parsing fixes apply to cached answers too. A run killed in the middle of a write leaves at most one truncated last
line, which is ignored on load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def cache_key(config: dict[str, Any], prompt_version: str, kind: str, payload: Any) -> str:
    """Stable key of one judge call (JSON with sorted keys, then sha256)."""
    blob = json.dumps([config, prompt_version, kind, payload], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgmentCache:
    """Append-only JSONL cache (thread-safe). ``path=None`` keeps it in memory only.

    Args:
        path: the cache file; created on the first write. Reused across runs.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        # errors="replace": a run killed mid-write may have cut a multi-byte character; that line is then ignored
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().split("\n")
        bad = 0
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self._data[record["key"]] = record["value"]
            except (json.JSONDecodeError, KeyError, TypeError):
                bad += 1
                logger.warning("%s line %d: unreadable cache entry ignored (interrupted write?)", self.path, lineno)
        logger.info("judgment cache %s: %d entries", self.path, len(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._data[key] = value
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps({"key": key, "value": value}, ensure_ascii=False)
            with open(self.path, "ab+") as handle:  # bytes: a line cut inside a character must not break this
                handle.seek(0, os.SEEK_END)
                if handle.tell() > 0:  # a previous run may have died mid-line: start on a fresh line
                    handle.seek(handle.tell() - 1)
                    if handle.read(1) != b"\n":
                        handle.write(b"\n")
                handle.write((line + "\n").encode("utf-8"))
                handle.flush()
