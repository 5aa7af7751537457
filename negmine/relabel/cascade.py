"""Cascade: a cheap judge clears the confident negatives, the expensive (LLM) judge sees only the rest.

For each query the cheap judge (a cross-encoder, or the pointwise P(yes) judge) scores every candidate. A mined
negative whose cheap score is below ``clear_below`` (and that the cheap judge is not unsure about) is *cleared*: it
stays a negative and costs no LLM call. The original positives and the remaining negatives go to the expensive judge,
whose ranking decides. Cleared passages are ranked after all escalated ones (by cheap score), so they fall below the
positive and, having no answer per the cheap judge, are kept as negatives by the ARHN rules. RLHN uses the same
shape with two API models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from negmine.errors import ConfigError
from negmine.relabel.base import Judge, Judgment, Label, Usage
from negmine.relabel.llm import Item


def _judge_many(judge: Judge, items: Sequence[Item]) -> list[list[Judgment]]:
    if hasattr(judge, "judge_many"):
        return judge.judge_many(items)  # type: ignore[attr-defined]
    return [judge.judge(q, p, n) for q, p, n in items]


class CascadeJudge:
    """Cheap judge first; only uncleared candidates reach the expensive judge.

    Args:
        cheap: a scoring judge (``CrossEncoderJudge``, ``PointwiseLLMJudge``).
        expensive: the final judge (usually ``ARHNJudge``).
        clear_below: cheap score under which a mined negative is cleared as a negative.
    """

    def __init__(self, cheap: Judge, expensive: Judge, *, clear_below: float = 0.1) -> None:
        if not 0.0 <= clear_below <= 1.0:
            raise ConfigError(f"clear_below must be a probability in [0, 1], got {clear_below}")
        self.cheap = cheap
        self.expensive = expensive
        self.clear_below = clear_below
        self.name = f"cascade({cheap.name} -> {expensive.name})"
        self.usage = Usage()

    def get_config_dict(self) -> dict[str, Any]:
        return {"type": "cascade", "cheap": self.cheap.get_config_dict(),
                "expensive": self.expensive.get_config_dict(), "clear_below": self.clear_below}

    def judge(self, query: str, passages: Sequence[str], num_positives: int = 1) -> list[Judgment]:
        return self.judge_many([(query, passages, num_positives)])[0]

    def _cleared(self, judgment: Judgment, index: int, num_positives: int) -> bool:
        return (index >= num_positives and judgment.score is not None and judgment.label != Label.UNSURE
                and judgment.score < self.clear_below)

    def judge_many(self, items: Sequence[Item]) -> list[list[Judgment]]:
        cheap = _judge_many(self.cheap, items)
        escalated_items: list[Item] = []
        escalated_index: list[list[int]] = []
        for (query, passages, k), judgments in zip(items, cheap, strict=True):
            keep = [i for i, j in enumerate(judgments) if not self._cleared(j, i, k)]
            escalated_index.append(keep)
            self.usage.add(cleared=len(passages) - len(keep), escalated=len(keep) - k)
            if len(keep) > k:  # at least one negative left to check
                escalated_items.append((query, [passages[i] for i in keep], k))
        expensive = iter(_judge_many(self.expensive, escalated_items))
        out = []
        for (_, passages, k), judgments, keep in zip(items, cheap, escalated_index, strict=True):
            merged: list[Judgment | None] = [None] * len(passages)
            if len(keep) > k:
                for i, judgment in zip(keep, next(expensive), strict=True):
                    merged[i] = judgment
                offset = len(keep)
            else:  # everything cleared: the cheap judge's own order of the positives
                for position, i in enumerate(sorted(keep, key=lambda i: judgments[i].rank or 0)):
                    merged[i] = replace(judgments[i], rank=position, extra={**judgments[i].extra, "cleared": False})
                offset = len(keep)
            cleared = sorted((i for i in range(len(passages)) if i not in keep), key=lambda i: -judgments[i].score)
            for position, i in enumerate(cleared):
                merged[i] = replace(judgments[i], rank=offset + position, label=Label.NEGATIVE,
                                    rationale=f"cleared by the cheap judge ({judgments[i].rationale})",
                                    extra={**judgments[i].extra, "cleared": True})
            out.append(merged)  # type: ignore[arg-type]
        return out
