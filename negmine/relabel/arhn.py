"""The ARHN rules: what a judge's ranking and answers decide for each mined negative.

Rules (ARHN, Choi et al. 2026, "Answer-Centric Relabeling of Hard Negatives with Open-Source LLMs", arXiv
2604.11092; docs/methods.md §7), applied per query after a judge ranked the candidate set (original positives +
mined negatives). The *anchor* is the best-ranked original positive:

- **relabel** (modes ``relabel``, ``both``): a negative ranked **above** the anchor becomes an extra positive.
- **filter** (modes ``filter``, ``both``): a negative ranked **below** the anchor that **has an answer** (a verified
  stage-1 snippet, or a positive label from a pointwise judge) is removed from the negatives. The filter rule looks
  below the anchor only, as in the paper: in ``filter`` mode a negative ranked above the anchor is kept, whatever
  its answer (moving it is the relabel rule's job).
- everything else stays a negative.
- **unsure**: when the ranking is missing (unparseable stage 2), or a below-anchor negative's answer is unknown
  (unparseable stage 1) in a mode that filters, the decision is ``unsure`` and ``on_unsure`` decides: ``drop``
  (default; a doubtful negative is worse than a missing one) removes it, ``keep`` keeps it. Unsure is always
  recorded, never silent.

:func:`apply_decisions` turns the decisions into the relabeled record: extra positives are appended to
``positive_ids``/``positives``/``positive_scores`` (with their mining scores), removed negatives disappear from the
three negative lists, and every other field is passed through. The pipeline that runs a judge over a file is
:mod:`negmine.relabel.api`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from negmine.data.mined import MinedRecord
from negmine.errors import check_choice
from negmine.relabel.base import Judgment

Mode = Literal["relabel", "filter", "both"]
OnUnsure = Literal["keep", "drop"]
MODES = ("relabel", "filter", "both")
ON_UNSURE = ("keep", "drop")

@dataclass
class Decision:
    """The outcome for one mined negative."""

    decision: Literal["relabel", "filter", "keep", "unsure"]
    removed: bool
    reason: str


def decide(judgments: Sequence[Judgment], num_positives: int, mode: Mode = "both",
           on_unsure: OnUnsure = "drop") -> list[Decision]:
    """Apply the ARHN rules to one query; returns one :class:`Decision` per negative (``judgments[num_positives:]``).

    Example:
        >>> from negmine.relabel.base import Judgment, Label
        >>> js = [Judgment(Label.POSITIVE, rank=1, answer_status="verified"),    # original positive
        ...       Judgment(Label.POSITIVE, rank=0, answer_status="verified"),    # ranked above it
        ...       Judgment(Label.POSITIVE, rank=2, answer_status="verified"),    # below, with an answer
        ...       Judgment(Label.NEGATIVE, rank=3, answer_status="no_answer")]   # below, no answer
        >>> [d.decision for d in decide(js, 1)]
        ['relabel', 'filter', 'keep']
    """
    check_choice("mode", mode, MODES)
    check_choice("on_unsure", on_unsure, ON_UNSURE)
    positive_ranks = [j.rank for j in judgments[:num_positives]]
    anchor = None if any(r is None for r in positive_ranks) else min(positive_ranks)  # type: ignore[type-var]
    drop = on_unsure == "drop"
    decisions = []
    for j in judgments[num_positives:]:
        if anchor is None or j.rank is None:
            decisions.append(Decision("unsure", drop, "no ranking (stage 2 output not parseable)"))
        elif j.rank < anchor:
            if mode in ("relabel", "both"):
                decisions.append(Decision("relabel", True, f"ranked {j.rank + 1}, above the positive ({anchor + 1})"))
            else:
                decisions.append(Decision("keep", False, f"ranked above the positive ({anchor + 1}); mode=filter"))
        elif mode in ("filter", "both") and j.has_answer is None:
            decisions.append(Decision("unsure", drop, f"ranked below the positive; answer unknown ({j.rationale})"))
        elif mode in ("filter", "both") and j.has_answer:
            decisions.append(Decision("filter", True, f"ranked {j.rank + 1}, below the positive ({anchor + 1}), "
                                                      "but has an answer"))
        else:
            decisions.append(Decision("keep", False, f"ranked {j.rank + 1}, below the positive ({anchor + 1})"
                                                     + ("" if mode == "relabel" else ", no answer")))
    return decisions


def apply_decisions(record: MinedRecord, decisions: Sequence[Decision]) -> MinedRecord:
    """The relabeled record (a new one): relabeled negatives appended to the positives (with their mining scores),
    removed negatives dropped; every other field is kept."""
    relabeled = [i for i, d in enumerate(decisions) if d.decision == "relabel"]
    kept = [i for i, d in enumerate(decisions) if not d.removed]
    per_positive = None
    if record.positive_negatives is not None:
        # per-positive negatives: re-index the kept ones; a relabeled positive gets the kept negatives scoring below it
        where = {old: new for new, old in enumerate(kept)}
        per_positive = [None if negs is None else [where[i] for i in negs if i in where]
                        for negs in record.positive_negatives]
        kept_scores = [record.negative_scores[i] for i in kept]
        for i in relabeled:
            per_positive.append([k for k, s in enumerate(kept_scores) if s < record.negative_scores[i]])
    return dataclasses.replace(
        record,
        positive_ids=record.positive_ids + [record.negative_ids[i] for i in relabeled],
        positives=record.positives + [record.negatives[i] for i in relabeled],
        positive_scores=record.positive_scores + [record.negative_scores[i] for i in relabeled],
        negative_ids=[record.negative_ids[i] for i in kept],
        negatives=[record.negatives[i] for i in kept],
        negative_scores=[record.negative_scores[i] for i in kept],
        positive_negatives=per_positive,
        extra=dict(record.extra),
    )
