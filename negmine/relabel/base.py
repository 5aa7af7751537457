"""Shared types: :class:`Label`, :class:`Judgment`, and the :class:`Judge` / :class:`ChatClient` protocols.

A *judge* looks at one query and its candidate set (the original positives first, then the mined negatives) and
returns one :class:`Judgment` per passage. A judgment carries the evidence the ARHN rules need:

- ``rank``: the 0-based position of the passage in the judge's ranking of the whole candidate set (0 = the most
  directly answering passage), or ``None`` when the judge could not rank it (unparseable output);
- ``answer`` / ``answer_status``: the verified answer snippet, or why there is none;
- ``label``: the judge's pointwise opinion (``positive`` = answers the query, ``negative``, or ``unsure``).

The rules that turn evidence into decisions (relabel, filter, keep) live in :mod:`negmine.relabel.arhn`, so every
judge (two-stage LLM, pointwise P(yes), cross-encoder, cascade) goes through the same rules.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from negmine.errors import NegmineError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}


class Label(str, Enum):
    """A judge's pointwise opinion of one (query, passage) pair."""

    NEGATIVE = "negative"
    POSITIVE = "positive"
    UNSURE = "unsure"


# answer_status values
VERIFIED = "verified"  # the snippet occurs in the passage (after whitespace/case normalisation)
NO_ANSWER = "no_answer"  # the model said NO_ANSWER
UNVERIFIED = "unverified"  # the model gave a snippet that is not in the passage: counts as no answer
UNPARSEABLE = "unparseable"  # the output had neither form (or the request failed): unsure
NOT_ASKED = "not_asked"  # the judge has no snippet stage (cross-encoder, P(yes)); ``label`` stands in for it


@dataclass
class Judgment:
    """One judge's verdict on one (query, passage) pair.

    Args:
        label: pointwise opinion; for the two-stage LLM judge it is ``positive`` iff a verified snippet exists.
        score: P(relevant) or a cross-encoder probability; ``None`` for the listwise LLM judge.
        rank: 0-based position in the judge's ranking of the candidate set; ``None`` when unranked (unsure).
        answer: the verified answer snippet (verbatim from the passage) or ``None``.
        answer_status: one of ``verified``, ``no_answer``, ``unverified``, ``unparseable``, ``not_asked``.
        rationale: a short human-readable reason (raw model output for unparseable cases, truncated).
        judge: which judge produced it (the cheap or the expensive one in a cascade).
        extra: judge-specific details (permutation repairs, window count, errors).
    """

    label: Label
    score: float | None = None
    rank: int | None = None
    answer: str | None = None
    answer_status: str = NOT_ASKED
    rationale: str | None = None
    judge: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_answer(self) -> bool | None:
        """Whether the passage answers the query: ``None`` when unknown (unsure)."""
        if self.answer_status == VERIFIED:
            return True
        if self.answer_status in (NO_ANSWER, UNVERIFIED):
            return False
        if self.answer_status == UNPARSEABLE or self.label == Label.UNSURE:
            return None
        return self.label == Label.POSITIVE

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["label"] = self.label.value
        return data


@runtime_checkable
class Judge(Protocol):
    """Judges one query's candidate set.

    ``passages[:num_positives]`` are the original positives (the anchor of the ARHN rules); the rest are mined
    negatives. Returns one :class:`Judgment` per passage, in input order.
    """

    name: str

    def judge(self, query: str, passages: Sequence[str], num_positives: int = 1) -> list[Judgment]: ...

    def get_config_dict(self) -> dict[str, Any]: ...


@dataclass
class Completion:
    """One chat completion: the text plus token usage; ``error`` is set when the request failed for good."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    cached: bool = False


@runtime_checkable
class ChatClient(Protocol):
    """A chat model: ``complete_many`` answers a batch of conversations (concurrently or batched where it can)."""

    concurrency: int

    def complete_many(self, conversations: Sequence[list[Message]], *, max_tokens: int,
                      stop: Sequence[str] | None = None) -> list[Completion]: ...

    def get_config_dict(self) -> dict[str, Any]: ...


class Usage:
    """Thread-safe counters of requests, tokens, retries, cache hits and time per stage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, float] = {}

    def add(self, **values: float) -> None:
        with self._lock:
            for key, value in values.items():
                self.counts[key] = self.counts.get(key, 0) + value

    def get(self, key: str, default: float = 0) -> float:
        with self._lock:
            return self.counts.get(key, default)

    def to_dict(self) -> dict[str, float]:
        with self._lock:
            return dict(sorted(self.counts.items()))


class JudgeError(NegmineError, RuntimeError):
    """A judge backend failed for good (server unreachable after all retries, bad credentials)."""
