"""Exceptions with enough context to fix the input: the file, the line and the field."""

from __future__ import annotations

import os
from collections.abc import Sequence

MAX_MESSAGE_CHARS = 500


class NegmineError(Exception):
    """Base class of negmine's own errors."""


class DataError(NegmineError, ValueError):
    """Bad input data. The message names the file, the 1-based line and the field at fault."""

    def __init__(
        self, message: str, path: str | os.PathLike | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        if len(message) > MAX_MESSAGE_CHARS:  # a huge bad value (a 10 MB line) must not become a 10 MB message
            message = message[:MAX_MESSAGE_CHARS] + f"… ({len(message):,} characters)"
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(NegmineError, ValueError):
    """An invalid option value; the message names the option, the value and what is allowed."""


def check_choice(name: str, value: object, allowed: Sequence[object]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``allowed`` (``name='bad' is not one of 'a', 'b'``)."""
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")


class ModelNotFoundError(NegmineError, FileNotFoundError):
    """Model weights that are not available locally (and cannot be downloaded)."""
