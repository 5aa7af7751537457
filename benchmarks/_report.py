"""What the benchmark reports share: the ``Command:`` line that reruns a report, and publishing a report.

Imported by the scripts in this folder as ``from _report import ...`` (a script's own folder is on ``sys.path``;
the tests load the scripts with this folder on ``sys.path`` too). negmine itself never prints: this lives here.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence

from negmine.io import atomic_open


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """``python SCRIPT ARGS`` as a user would type it to rerun a report: arguments shell-quoted, the local models
    folder (``$NEGMINE_MODELS``) written as the variable. ``argv`` defaults to this process's arguments."""
    args = sys.argv[1:] if argv is None else argv
    text = " ".join(["python", script, *(shlex.quote(a) for a in args)])
    models = os.environ.get("NEGMINE_MODELS", "").rstrip("/")
    return text.replace(models, "$NEGMINE_MODELS") if models else text


def publish(text: str, out: str | os.PathLike) -> None:
    """Print a report and write it atomically to ``out``, unless ``out`` is ``-`` (print only)."""
    print(text)
    if str(out) != "-":
        with atomic_open(out) as handle:
            handle.write(text)
