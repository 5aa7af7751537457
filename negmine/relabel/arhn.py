"""ARHN rules and the relabel pipeline: ``mined.jsonl`` in, relabeled ``mined.jsonl`` + ``judgments.jsonl`` out.

Rules (ARHN, Choi et al. 2026), applied per query after a judge ranked the candidate set (original positives +
mined negatives). The *anchor* is the best-ranked original positive:

- **relabel** (modes ``relabel``, ``both``): a negative ranked **above** the anchor becomes an extra positive.
- **filter** (modes ``filter``, ``both``): a negative ranked **below** the anchor that **has an answer** (a verified
  stage-1 snippet, or a positive label from a pointwise judge) is removed from the negatives. In ``filter`` mode a
  negative ranked above the anchor is treated like any other: removed only if it has an answer (the paper's F rule
  looks below the positive only; the above-anchor ones are left to R).
- everything else stays a negative.
- **unsure**: when the ranking is missing (unparseable stage 2), or a below-anchor negative's answer is unknown
  (unparseable stage 1) in a mode that filters, the decision is ``unsure`` and ``on_unsure`` decides: ``drop``
  (default; a doubtful negative is worse than a missing one) removes it, ``keep`` keeps it. Unsure is always
  recorded, never silent.

The output keeps the input format: extra positives are appended to ``positive_ids``/``positives``/
``positive_scores`` (with their mining scores), removed negatives disappear from the three negative lists, and any
other fields are passed through.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from negmine.errors import ConfigError, check_choice
from negmine.io import atomic_open, write_json, write_manifest
from negmine.relabel.base import Judge, Judgment
from negmine.relabel.cache import JudgmentCache

logger = logging.getLogger(__name__)

Mode = Literal["relabel", "filter", "both"]
OnUnsure = Literal["keep", "drop"]
MODES = ("relabel", "filter", "both")
ON_UNSURE = ("keep", "drop")

def read_mined(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """``mined.jsonl`` records as dicts, read strictly by :func:`negmine.mining.formats.read_mined` (teacher scores
    required: relabeling moves passages together with their scores)."""
    from negmine.mining.formats import read_mined as read_mined_records

    for record in read_mined_records(path, require_scores=True):
        yield record.to_dict()


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


def apply_decisions(record: dict[str, Any], decisions: Sequence[Decision]) -> dict[str, Any]:
    """The relabeled record: relabeled negatives appended to the positives, removed negatives dropped."""
    out = dict(record)
    for key in ("positive_ids", "positives", "positive_scores", "negative_ids", "negatives", "negative_scores"):
        out[key] = list(record[key])
    kept = []
    for i, decision in enumerate(decisions):
        if decision.decision == "relabel":
            out["positive_ids"].append(record["negative_ids"][i])
            out["positives"].append(record["negatives"][i])
            out["positive_scores"].append(record["negative_scores"][i])
        if not decision.removed:
            kept.append(i)
    for key in ("negative_ids", "negatives", "negative_scores"):
        out[key] = [record[key][i] for i in kept]
    if record.get("positive_negatives") is not None:
        # per-positive negatives: re-index the kept ones; a relabeled positive gets the kept negatives scoring below it
        where = {old: new for new, old in enumerate(kept)}
        out["positive_negatives"] = [
            None if negs is None else [where[i] for i in negs if i in where] for negs in record["positive_negatives"]
        ]
        for i, decision in enumerate(decisions):
            if decision.decision == "relabel":
                score = record["negative_scores"][i]
                out["positive_negatives"].append([k for k, s in enumerate(out["negative_scores"]) if s < score])
    return out


@dataclass
class RelabelSummary:
    """Counts and costs of one relabel run (written to ``summary.json``)."""

    queries: int = 0
    positives_in: int = 0
    negatives_in: int = 0
    relabeled: int = 0
    filtered: int = 0
    unsure: int = 0
    unsure_dropped: int = 0
    kept: int = 0
    wall_seconds: float = 0.0
    usage: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def per10(n: int) -> float:
            return round(10 * n / self.negatives_in, 3) if self.negatives_in else 0.0

        pairs = self.positives_in + self.negatives_in
        u = self.usage
        out = {
            "queries": self.queries, "positives_in": self.positives_in, "negatives_in": self.negatives_in,
            "relabeled": self.relabeled, "filtered": self.filtered, "unsure": self.unsure,
            "unsure_dropped": self.unsure_dropped, "kept": self.kept,
            "relabeled_per_10_negatives": per10(self.relabeled), "filtered_per_10_negatives": per10(self.filtered),
            "unsure_rate": round(self.unsure / self.negatives_in, 4) if self.negatives_in else 0.0,
            "prompt_tokens": int(u.get("prompt_tokens", 0)), "completion_tokens": int(u.get("completion_tokens", 0)),
            "wall_seconds": round(self.wall_seconds, 3),
            "pairs_per_second": round(pairs / self.wall_seconds, 3) if self.wall_seconds else None,
        }
        for stage, seconds_key in (("stage1", "stage1_seconds"), ("stage2", "stage2_wall_seconds"),
                                   ("pointwise", "pointwise_seconds"), ("cross_encoder", "cross_encoder_seconds")):
            seconds = u.get(seconds_key, 0.0)
            computed = u.get(f"{stage}_pairs", 0) - u.get(f"{stage}_cached_pairs", 0)
            if seconds:
                out[f"{stage}_pairs_per_second"] = round(computed / seconds, 4)
        out["usage"] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in u.items()}
        return out

    def add(self, num_positives: int, decisions: Sequence[Decision]) -> None:
        """Count one query's positives and its negatives' decisions."""
        self.queries += 1
        self.positives_in += num_positives
        self.negatives_in += len(decisions)
        for d in decisions:
            self.relabeled += d.decision == "relabel"
            self.filtered += d.decision == "filter"
            self.kept += d.decision == "keep"
            self.unsure += d.decision == "unsure"
            self.unsure_dropped += d.decision == "unsure" and d.removed


def _merge_usage(*parts: dict[str, float]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def _collect_usage(judge: Any) -> dict[str, float]:
    """Usage counters of a judge, its client and (for a cascade) both of its judges."""
    parts = []
    for obj in (judge, getattr(judge, "client", None)):
        if obj is not None and hasattr(obj, "usage"):
            parts.append(obj.usage.to_dict())
    for sub in ("cheap", "expensive"):
        if hasattr(judge, sub):
            parts.append(_collect_usage(getattr(judge, sub)))
    return _merge_usage(*parts)


def _judge_many(judge: Judge, items: list) -> list[list[Judgment]]:
    if hasattr(judge, "judge_many"):
        return judge.judge_many(items)  # type: ignore[attr-defined]
    return [judge.judge(q, p, n) for q, p, n in items]


def relabel_records(records: Sequence[dict[str, Any]], judge: Judge, *, mode: Mode = "both",
                    on_unsure: OnUnsure = "drop", chunk_size: int = 16, show_progress_bar: bool = False,
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], RelabelSummary]:
    """Judge and relabel in-memory mined records; returns (records, judgment rows, summary).

    Args:
        records: ``mined.jsonl`` records (see :func:`read_mined`).
        judge: any :class:`~negmine.relabel.base.Judge`.
        mode: ``relabel`` (R), ``filter`` (F) or ``both`` (R+F, ARHN's best).
        on_unsure: ``drop`` or ``keep`` negatives whose decision is unsure.
        chunk_size: queries sent to the judge together (stage-1 pairs of a chunk run concurrently/batched).
        show_progress_bar: a tqdm bar over queries.
    """
    check_choice("mode", mode, MODES)
    check_choice("on_unsure", on_unsure, ON_UNSURE)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    start = time.perf_counter()
    summary = RelabelSummary()
    out_records: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(records), desc="relabel", unit="query")
    for offset in range(0, len(records), chunk_size):
        chunk = records[offset:offset + chunk_size]
        items = [(r["query"], list(r["positives"]) + list(r["negatives"]), len(r["positives"])) for r in chunk]
        all_judgments = _judge_many(judge, items)
        for record, judgments in zip(chunk, all_judgments, strict=True):
            k = len(record["positives"])
            decisions = decide(judgments, k, mode, on_unsure)
            out_records.append(apply_decisions(record, decisions))
            summary.add(k, decisions)
            rows.extend(judgment_rows(record, judgments, decisions))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    summary.wall_seconds = time.perf_counter() - start
    summary.usage = _collect_usage(judge)
    return out_records, rows, summary


def judgment_rows(record: dict[str, Any], judgments: Sequence[Judgment],
                  decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """One ``judgments.jsonl`` row per judged passage of a record: the positives first, then the negatives."""
    k = len(record["positives"])
    anchor = [j.rank for j in judgments[:k]]
    anchor_rank = None if None in anchor else min(anchor) + 1  # type: ignore[type-var]
    rows = []
    for i, judgment in enumerate(judgments):
        decision = None if i < k else decisions[i - k]
        rows.append({
            "query_id": record["query_id"],
            "passage_id": record["positive_ids"][i] if decision is None else record["negative_ids"][i - k],
            "role": "positive" if decision is None else "negative",
            "judge": judgment.judge,
            "answer": judgment.answer if judgment.answer is not None else (
                "NO_ANSWER" if judgment.has_answer is False and judgment.answer_status != "not_asked" else None),
            "answer_status": judgment.answer_status,
            "label": judgment.label.value,
            "score": judgment.score,
            "rank": None if judgment.rank is None else judgment.rank + 1,
            "positive_rank": anchor_rank,
            "decision": "positive" if decision is None else decision.decision,
            "removed": False if decision is None else decision.removed,
            "reason": "original positive" if decision is None else decision.reason,
            "judge_note": judgment.rationale,
            **({"details": judgment.extra} if judgment.extra else {}),
        })
    return rows


#: ``judge_warning`` fires when, over at least ``WARN_MIN_QUERIES`` ranked queries, the original positive is ranked
#: first for fewer than ``WARN_POSITIVE_FIRST`` of them *and* one presentation slot is ranked first for at least
#: ``WARN_SAME_SLOT`` of them: the signature of a judge that answers by position (a weak LLM echoing a pattern).
WARN_MIN_QUERIES, WARN_POSITIVE_FIRST, WARN_SAME_SLOT = 20, 0.5, 0.5


def first_choice_slots(rows: Sequence[dict[str, Any]]) -> Counter[int]:
    """How often the judge ranked each presentation slot first, from ``judgments.jsonl`` rows (in input order:
    positives first, then the negatives in mining order). Queries whose ranking failed are left out."""
    by_query: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_query.setdefault(row["query_id"], []).append(row)
    firsts = (next((slot for slot, row in enumerate(group, start=1) if row["rank"] == 1), None)
              for group in by_query.values())
    return Counter(slot for slot in firsts if slot is not None)


def ranking_diagnostics(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Whether the judge's ranking looks content-driven: how often the original positive comes first, and which
    presentation slots the judge puts first (``summary.json``'s ``ranking``)."""
    slots = first_choice_slots(rows)
    ranked = sum(slots.values())
    anchors = {row["query_id"]: row["positive_rank"] for row in rows if row["role"] == "positive"}
    positive_first = sum(rank == 1 for rank in anchors.values())
    return {"ranked_queries": ranked,
            "positive_ranked_first": round(positive_first / ranked, 4) if ranked else None,
            "first_choice_slots": {str(slot): n for slot, n in sorted(slots.items())}}


def judge_warning(diagnostics: dict[str, Any]) -> str | None:
    """A warning when the ranking looks position-driven (see ``WARN_*``), else ``None``."""
    ranked, slots = diagnostics["ranked_queries"], diagnostics["first_choice_slots"]
    if ranked < WARN_MIN_QUERIES or diagnostics["positive_ranked_first"] >= WARN_POSITIVE_FIRST:
        return None
    slot, count = max(slots.items(), key=lambda item: item[1])
    if count / ranked < WARN_SAME_SLOT:
        return None
    return (f"the judge ranked the original positive first for only {diagnostics['positive_ranked_first']:.0%} of "
            f"{ranked} queries and put presentation slot {slot} first for {count / ranked:.0%} of them: it looks "
            f"like it ranks by position, not content. Check judgments.jsonl (or use a stronger judge) before "
            f"training on these labels.")


def relabel_file(mined: str | os.PathLike, judge: Judge, out_dir: str | os.PathLike, *, mode: Mode = "both",
                 on_unsure: OnUnsure = "drop", limit: int | None = None, chunk_size: int = 16,
                 show_progress_bar: bool = True, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Relabel a ``mined.jsonl`` file; writes ``mined.jsonl``, ``judgments.jsonl``, ``summary.json`` and
    ``manifest.json`` into ``out_dir`` and returns the summary dict.

    Outputs are written atomically at the end; judge calls are cached as they happen (see the judge's ``cache``),
    so a killed run resumes where it stopped and a rerun makes no model calls.

    Args:
        mined: the input written by ``negmine mine``.
        judge: any judge (``ARHNJudge``, ``PointwiseLLMJudge``, ``CrossEncoderJudge``, ``CascadeJudge``).
        out_dir: output folder.
        mode: ``relabel``, ``filter`` or ``both``.
        on_unsure: ``drop`` or ``keep`` unsure negatives.
        limit: relabel only the first ``limit`` queries.
        chunk_size: queries judged together.
        show_progress_bar: a tqdm bar.
        config: extra settings to record in the manifest (e.g. the judge spec).
    """
    records = list(read_mined(mined))
    if limit is not None:
        records = records[:limit]
    out_records, rows, summary = relabel_records(records, judge, mode=mode, on_unsure=on_unsure,
                                                 chunk_size=chunk_size, show_progress_bar=show_progress_bar)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / "mined.jsonl") as handle:
        for record in out_records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    with atomic_open(out / "judgments.jsonl") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    result = summary.to_dict()
    result["ranking"] = ranking_diagnostics(rows)
    warning = judge_warning(result["ranking"])
    if warning:
        logger.warning(warning)
        result["warnings"] = [warning]
    write_json(out / "summary.json", result)
    cache = getattr(judge, "cache", None) or getattr(getattr(judge, "expensive", None), "cache", None)
    run_config = {"judge": judge.get_config_dict(), "mode": mode, "on_unsure": on_unsure, "limit": limit,
                  "chunk_size": chunk_size, **(config or {})}
    if isinstance(cache, JudgmentCache) and cache.path is not None:
        run_config["cache"] = str(cache.path)
    write_manifest(out, "relabel", run_config, inputs=[mined], extra={"summary": result})
    logger.info("relabel: %s", {k: result[k] for k in ("relabeled", "filtered", "unsure", "wall_seconds")})
    return result
