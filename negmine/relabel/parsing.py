"""Strict parsing of judge outputs: stage-1 answer snippets (with verification) and stage-2 permutations (with repair).

Only the expected formats are accepted:

- stage 1: a first line ``ANSWER: <span>`` or ``NO_ANSWER``. Anything else is *unparseable* (recorded as unsure).
  A span that does not occur in the passage after whitespace/case normalisation is *unverified* and counts as no
  answer, so a model cannot invent an answer (or echo text injected elsewhere) and have it count.
- stage 2: identifiers ``[i]`` in order (``[2] > [1] > [3]``), or the bare form ``2 > 1 > 3`` when that is the whole
  reply. Identifiers outside ``1..n`` are dropped, repeats keep their first position, and missing identifiers are
  appended in their input order. Every repair is returned so it can be recorded. A reply with no valid identifier
  at all is unparseable.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from negmine.relabel.base import NO_ANSWER, UNPARSEABLE, UNVERIFIED, VERIFIED

_WS = re.compile(r"\s+")
_STRIP = " \t\n\r\"'`“”‘’«».…"
_ANSWER = re.compile(r"^\**\s*answer\s*\**\s*:\s*\**\s*(.*?)\s*$", re.IGNORECASE)
_NO_ANSWER = re.compile(r"^\**\s*no[_ ]answer\s*\**\s*[.!]?$", re.IGNORECASE)
_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_BARE = re.compile(r"^\s*\d+(?:\s*(?:>|,)\s*\d+)*\s*$")
_ALNUM = re.compile(r"\w", re.UNICODE)
# Small models often echo a format placeholder around the span ("<verbatim span>...</verbatim>", "<span>...");
# such wrappers are dropped before verification (the span itself must still occur in the passage).
_WRAPPER = re.compile(r"^(?:<[a-z_ /-]{1,30}>\s*)+|(?:\s*</?[a-z_ /-]{1,30}>)+$", re.IGNORECASE)


def normalize(text: str) -> str:
    """NFKC, case-fold, unify curly quotes and collapse whitespace: the comparison space of snippet checks."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("‘", "'").replace("’", "'").replace("“", '"').replace("”", '"')
    return _WS.sub(" ", text).strip()


def verify_snippet(snippet: str, *passages: str) -> bool:
    """Whether ``snippet`` occurs verbatim in any of ``passages`` after :func:`normalize`.

    Surrounding quotes, ellipses and a final full stop on the snippet are ignored; a snippet with fewer than two
    word characters never verifies (``"a"`` is in every passage).
    """
    core = normalize(snippet).strip(_STRIP)
    if len(_ALNUM.findall(core)) < 2:
        return False
    return any(core in normalize(p) for p in passages)


@dataclass
class SnippetResult:
    """Parsed stage-1 output: ``status`` is verified / no_answer / unverified / unparseable."""

    status: str
    answer: str | None = None  # the verified span, else None
    raw_answer: str | None = None  # what the model proposed (kept for unverified spans)


def parse_snippet(output: str, passage: str, *alternates: str) -> SnippetResult:
    """Parse a stage-1 reply and verify its span against ``passage`` (and ``alternates``, e.g. the fenced text)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return SnippetResult(UNPARSEABLE)
    first = lines[0].strip("`").strip()
    if _NO_ANSWER.match(first):
        return SnippetResult(NO_ANSWER)
    match = _ANSWER.match(first)
    if match is None:
        return SnippetResult(UNPARSEABLE)
    span = match.group(1).strip().strip("*").strip()
    if not span and len(lines) > 1:  # "ANSWER:" alone on its line, the span on the next one
        span = lines[1]
    span = _WRAPPER.sub("", span).strip(_STRIP.replace(".", "").replace("…", ""))
    if not span or _NO_ANSWER.match(span):
        return SnippetResult(NO_ANSWER)
    if verify_snippet(span, passage, *alternates):
        return SnippetResult(VERIFIED, answer=span, raw_answer=span)
    return SnippetResult(UNVERIFIED, raw_answer=span)


@dataclass
class Permutation:
    """A parsed ranking: ``order`` holds 0-based input indices, best first; ``repair`` records what was fixed."""

    order: list[int]
    repair: dict[str, Any] = field(default_factory=dict)

    @property
    def repaired(self) -> bool:
        return bool(self.repair)


def parse_permutation(output: str, n: int) -> Permutation | None:
    """Parse a RankGPT-style ranking of ``n`` items; ``None`` when the reply holds no valid identifier.

    Example:
        >>> parse_permutation("[3] > [1] > [3] > [7]", 4).order
        [2, 0, 1, 3]
    """
    tokens = _BRACKETED.findall(output)
    if not tokens and _BARE.match(output):
        tokens = re.findall(r"\d+", output)
    order: list[int] = []
    seen: set[int] = set()
    duplicates: list[int] = []
    out_of_range: list[int] = []
    for token in tokens:
        ident = int(token)
        if not 1 <= ident <= n:
            out_of_range.append(ident)
        elif ident in seen:
            duplicates.append(ident)
        else:
            seen.add(ident)
            order.append(ident - 1)
    if not order:
        return None
    missing = [i for i in range(n) if i + 1 not in seen]
    order.extend(missing)
    repair: dict[str, Any] = {}
    if missing:
        repair["missing"] = [i + 1 for i in missing]
    if duplicates:
        repair["duplicates"] = duplicates
    if out_of_range:
        repair["out_of_range"] = out_of_range
    return Permutation(order, repair)
