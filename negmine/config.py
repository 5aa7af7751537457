"""Config files: TOML in, dataclasses out. Precedence: built-in defaults < ``--config file.toml`` < explicit flags."""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from negmine.errors import ConfigError

T = TypeVar("T")


def read_toml(path: str | os.PathLike, section: str | None = None) -> dict[str, Any]:
    """Read a TOML file; with ``section``, return ``[section]`` if present, else the top-level table."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: invalid TOML ({err})") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; pass a .toml file") from None
    if section and isinstance(table.get(section), dict):
        return table[section]
    return table


def build_config(cls: type[T], file_values: dict[str, Any], overrides: dict[str, Any], source: str = "") -> T:
    """Instantiate dataclass ``cls`` from a config table and explicit overrides (``None`` overrides are ignored).

    Unknown keys raise :class:`ConfigError` with a "did you mean" suggestion.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in file_values.items():
        norm = key.replace("-", "_")
        if norm not in names:
            close = difflib.get_close_matches(norm, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source or cls.__name__}: unknown option {key!r}.{hint}")
        values[norm] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{source or cls.__name__}: {err}") from None
