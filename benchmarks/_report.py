"""One writer for every benchmark's report: ``benchmarks/results/NAME.md`` and its machine-readable twin ``NAME.json``.

Every figure a report shows is written by its script; nobody edits a results file by hand. Each pair carries the
command line that reproduces it, the commit, the hardware (CPU model and SIMD flags from ``/proc/cpuinfo``, cores,
RAM, GPU) and the 1-minute load average sampled during each timed phase (a figure measured at load 8 on a 2-core
machine is not the figure of a quiet one).

Usage in a benchmark::

    from _report import Report

    report = Report("encode_speed", script="benchmarks/encode_speed.py")
    with report.phase("torch fp32"):
        ...                                   # the timed work
    report.write(markdown_body, {"speedup": 1.96, ...})   # NAME.md and NAME.json under benchmarks/results/

:func:`convert_markdown` writes the twin of a report whose raw data is gone, by parsing the ``.md`` the script wrote
(labelled ``"converted_from"`` and ``"raw_data": false``), so that no number is ever typed in.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
if str(REPO) not in sys.path:  # run as `python benchmarks/NAME.py` from a checkout without an install
    sys.path.insert(0, str(REPO))

from negmine.pipeline import LoadSampler, git_commit, hardware_info, hardware_text  # noqa: E402


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """``python SCRIPT ARGS`` as a user would type it to rerun a report: arguments shell-quoted, the local models
    folder (``$NEGMINE_MODELS``) written as the variable. ``argv`` defaults to this process's arguments."""
    args = sys.argv[1:] if argv is None else argv
    text = " ".join(["python", script, *(shlex.quote(str(a)) for a in args)])
    models = os.environ.get("NEGMINE_MODELS", "").rstrip("/")
    return text.replace(models, "$NEGMINE_MODELS") if models else text


def publish(text: str, out: str | os.PathLike) -> None:
    """Print a report and write it atomically to ``out``, unless ``out`` is ``-`` (print only)."""
    from negmine.io import atomic_open

    print(text)
    if str(out) != "-":
        with atomic_open(out) as handle:
            handle.write(text)


class Report:
    """Collects a benchmark's timed phases and writes its ``NAME.md`` + ``NAME.json``.

    Args:
        name: the report's file stem (``benchmarks/results/NAME.md``).
        script: the script path as typed from the repository root (for the ``Command:`` line).
        argv: the script's arguments (default: this process's).
        out: the ``.md`` path (default ``benchmarks/results/NAME.md``; ``-`` prints only); the ``.json`` goes beside
            it.
        load_interval: seconds between load-average samples inside a phase.
    """

    def __init__(self, name: str, script: str, argv: Sequence[str] | None = None, out: str | os.PathLike | None = None,
                 load_interval: float = 2.0) -> None:
        self.name = name
        self.command = command_line(script, argv)
        self.out = Path(out) if out is not None and str(out) != "-" else (None if out is not None else
                                                                          RESULTS / f"{name}.md")
        self.load_interval = load_interval
        self.phases: dict[str, dict[str, Any]] = {}
        self.load_at_start = _load()

    @contextlib.contextmanager
    def phase(self, label: str) -> Iterator[None]:
        """Time a block and sample the load average while it runs; repeated labels accumulate."""
        start = time.perf_counter()
        with LoadSampler(self.load_interval) as load:
            yield
        seconds = time.perf_counter() - start
        entry = self.phases.setdefault(label, {"seconds": 0.0, "samples": []})
        entry["seconds"] += seconds
        entry["samples"].extend(load.samples)

    def phase_summary(self) -> dict[str, dict[str, Any]]:
        out = {}
        for label, entry in self.phases.items():
            samples = entry["samples"]
            load = ({"min": round(min(samples), 2), "mean": round(sum(samples) / len(samples), 2),
                     "max": round(max(samples), 2), "samples": len(samples)} if samples else None)
            out[label] = {"seconds": round(entry["seconds"], 3), "load_average": load}
        return out

    def provenance(self) -> dict[str, Any]:
        info = hardware_info()
        return {"command": self.command, "commit": git_commit(), "hardware": info,
                "hardware_text": hardware_text(info), "load_average_at_start": self.load_at_start,
                "load_average_at_end": _load(), "phases": self.phase_summary(),
                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def footer(self, provenance: dict[str, Any]) -> str:
        """The provenance block appended to every ``.md``."""
        lines = ["", "---", "", f"Command: `{provenance['command']}`", "",
                 f"Commit: {provenance['commit']}. Hardware: {provenance['hardware_text']}.", ""]
        phases = provenance["phases"]
        if phases:
            parts = []
            for label, phase in phases.items():
                load = phase["load_average"]
                parts.append(f"{label} {phase['seconds']:.1f} s at load {load['min']:.1f}-{load['max']:.1f} "
                             f"(mean {load['mean']:.1f}, {load['samples']} samples)" if load else
                             f"{label} {phase['seconds']:.1f} s")
            lines += ["1-minute load average during each timed phase: " + "; ".join(parts) + ".", ""]
        else:
            start, end = provenance["load_average_at_start"], provenance["load_average_at_end"]
            if start is not None:
                lines += [f"1-minute load average: {start:.1f} at the start, {end:.1f} at the end.", ""]
        lines.append(f"Written by the script (machine-readable twin: `{self.name}.json`); do not edit by hand.")
        return "\n".join(lines) + "\n"

    def write(self, markdown: str, data: dict[str, Any], *, echo: bool = True) -> str:
        """Write ``NAME.md`` (``markdown`` + the provenance footer) and ``NAME.json`` (``data`` + provenance).

        ``data`` must hold every figure the Markdown shows. Returns the full Markdown text.
        """
        from negmine.io import atomic_open, write_json

        provenance = self.provenance()
        text = markdown.rstrip("\n") + "\n" + self.footer(provenance)
        if echo:
            print(text)
        if self.out is not None:
            with atomic_open(self.out) as handle:
                handle.write(text)
            write_json(self.out.with_suffix(".json"), {"name": self.name, **provenance, "data": data})
        return text


def replace_readme_block(readme: str | os.PathLike, start: str, end: str, body: str) -> bool:
    """Rewrite the text between README's ``start`` and ``end`` markers with ``body`` (atomically); returns False,
    writing nothing, when the README lacks the markers."""
    from negmine.io import atomic_open

    text = Path(readme).read_text(encoding="utf-8")
    at, until = text.find(start), text.find(end)
    if at < 0 or until < at:
        return False
    with atomic_open(readme) as handle:
        handle.write(text[: at + len(start)] + "\n" + body.rstrip("\n") + "\n" + text[until:])
    return True


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


#### twins of reports whose raw data is gone
_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])", re.IGNORECASE)


def markdown_tables(text: str) -> list[dict[str, Any]]:
    """Every pipe table of a Markdown text: ``{"header": [...], "rows": [[...], ...]}`` (cells stripped)."""
    tables, current = [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            cells = [c.strip() for c in stripped[1:-1].split("|")]
            if current is None:
                current = {"header": cells, "rows": []}
            elif all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                continue
            else:
                current["rows"].append(cells)
        elif current is not None:
            tables.append(current)
            current = None
    if current is not None:
        tables.append(current)
    return tables


def numbers_in(text: str) -> list[str]:
    """The numbers written in a text, as written (``1,234``, ``0.6740``, ``-0.47``), in order."""
    return [m.group(0).replace("−", "-") for m in _NUMBER.finditer(text)]


def convert_markdown(md: str | os.PathLike, note: str | None = None) -> Path:
    """Write ``NAME.json`` beside a generated ``NAME.md`` whose raw data is not kept: its tables and every number
    of its text, parsed (never typed), marked ``"converted_from": "NAME.md", "raw_data": false`` (and ``note``)."""
    from negmine.io import write_json

    md = Path(md)
    text = md.read_text(encoding="utf-8")
    command = re.search(r"Command:\s*`([^`]+)`", text) or re.search(r"^`(python [^`]+)`", text, re.MULTILINE)
    out = md.with_suffix(".json")
    write_json(out, {"name": md.stem, "converted_from": md.name, "raw_data": False, "note": note,
                     "command": command.group(1) if command else None, "tables": markdown_tables(text),
                     "numbers": numbers_in(text)})
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python benchmarks/_report.py convert [--note TEXT] NAME.md ...``: write the converted twins."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "convert" or len(args) < 2:
        raise SystemExit("usage: python benchmarks/_report.py convert [--note TEXT] benchmarks/results/NAME.md ...")
    note = None
    if args[1] == "--note":
        note, args = args[2], args[2:]
    for path in args[1:]:
        print(convert_markdown(path, note))


if __name__ == "__main__":
    main()
