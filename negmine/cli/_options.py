"""Shared CLI option helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML file with defaults; flags override it.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and exit.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed (same seed, same output bytes).")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", help="Output folder.")]
RetrieverOpt = Annotated[
    str | None,
    typer.Option(
        "--retriever",
        "-r",
        help="Preset (minilm, bge, bge-small, e5, gte, mpnet, embeddinggemma), model folder or hub id; bm25 "
        "(negmine[bm25]); hybrid:bm25+minilm (reciprocal-rank fusion, k=60; use --strategy range).",
    ),
]
ModelPathOpt = Annotated[
    str | None,
    typer.Option("--model-path", help="Local folder with the preset's weights (offline use; or set $NEGMINE_MODELS)."),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data", "-d", help="BEIR folder, dataset name under $NEGMINE_DATA, pair file (.jsonl/.parquet) or hub id."
    ),
]
SplitOpt = Annotated[str | None, typer.Option("--split", help="Qrels split.")]
CORPUS_STORAGE_HELP = ("Where a BEIR corpus and its queries live: memory (dicts; default), disk (an index over the "
                       "JSONL files built once in the cache folder; texts read when needed, so memory does not grow "
                       "with the corpus text) or auto (disk above a 512 MiB corpus file). Same output.")


def check_unknown_qrels(value: str | None) -> None:
    """``--unknown-qrels`` must name a :data:`negmine.data.UnknownQrels` policy (``None``: the config's default).

    :func:`negmine.data.load_data` checks the same choices with a ``ValueError``; this one fails before anything is
    loaded, as a ``ConfigError`` that the CLI prints on one line.
    """
    from typing import get_args

    from negmine.data import UnknownQrels
    from negmine.errors import ConfigError

    allowed = get_args(UnknownQrels)
    if value is not None and value not in allowed:
        raise ConfigError(f"--unknown-qrels {value!r} is not one of {', '.join(allowed)}")


def parse_range(value: str | None) -> tuple[int | None, int | None]:
    """``"10:100"`` -> (10, 100); ``":50"`` -> (None, 50)."""
    if value is None:
        return None, None
    lo, sep, hi = value.partition(":")
    if not sep:
        raise typer.BadParameter(f"expected MIN:MAX such as 0:50, got {value!r}", param_hint="--range")
    try:
        return (int(lo) if lo else None), (int(hi) if hi else None)
    except ValueError:
        raise typer.BadParameter(f"expected integers in MIN:MAX, got {value!r}", param_hint="--range") from None


def build_or_show(cls: type, section: str, config: Path | None, overrides: dict[str, Any], dry_run: bool) -> Any:
    """The command's config: ``[section]`` of the ``--config`` TOML under the flags that were given; with
    ``--dry-run`` it is printed and ``None`` returned (the command then stops)."""
    from negmine.config import build_config, read_toml

    file_values = read_toml(config, section) if config else {}
    cfg = build_config(cls, file_values, overrides, source=str(config or ""))
    if dry_run:
        print_config(cfg.to_dict())
        return None
    return cfg


def print_config(config: dict[str, Any]) -> None:
    typer.echo(json.dumps(config, indent=2, default=str))


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in rows:
        table.add_row(label, value)
    Console(stderr=True).print(table)
