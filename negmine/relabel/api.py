"""The relabel pipeline: ``mined.jsonl`` in, relabeled ``mined.jsonl`` + ``judgments.jsonl`` + ``summary.json`` out.

:func:`relabel_file` (``negmine relabel``) reads a mined file, has a judge rank and answer each query's candidate set
(:func:`relabel_records`), applies the ARHN rules of :mod:`negmine.relabel.arhn`, and writes the outputs with a
manifest. :class:`RelabelSummary` counts the decisions and the judge's cost; :func:`ranking_diagnostics` and
:func:`judge_warning` flag a judge that ranks by position rather than content.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negmine.data.mined import MinedRecord, as_records, read_mined, write_mined
from negmine.errors import ConfigError, check_choice
from negmine.io import write_json, write_jsonl, write_manifest
from negmine.relabel.arhn import MODES, ON_UNSURE, Decision, Mode, OnUnsure, apply_decisions, decide
from negmine.relabel.base import Judge, Judgment
from negmine.relabel.cache import JudgmentCache

logger = logging.getLogger(__name__)


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


def relabel_records(records: Sequence[MinedRecord | Mapping[str, Any]], judge: Judge, *, mode: Mode = "both",
                    on_unsure: OnUnsure = "drop", chunk_size: int = 16, show_progress_bar: bool = False,
                    ) -> tuple[list[MinedRecord], list[dict[str, Any]], RelabelSummary]:
    """Judge and relabel in-memory mined records; returns (records, judgment rows, summary).

    Args:
        records: ``mined.jsonl`` records (:class:`~negmine.data.mined.MinedRecord`, or their dicts, validated
            with teacher scores required: relabeling moves passages together with their scores).
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
    records = as_records(records, require_scores=True)
    start = time.perf_counter()
    summary = RelabelSummary()
    out_records: list[MinedRecord] = []
    rows: list[dict[str, Any]] = []
    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(records), desc="relabel", unit="query")
    for offset in range(0, len(records), chunk_size):
        chunk = records[offset:offset + chunk_size]
        items = [(r.query, list(r.positives) + list(r.negatives), len(r.positives)) for r in chunk]
        all_judgments = _judge_many(judge, items)
        for record, judgments in zip(chunk, all_judgments, strict=True):
            k = len(record.positives)
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


def judgment_rows(record: MinedRecord, judgments: Sequence[Judgment],
                  decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """One ``judgments.jsonl`` row per judged passage of a record: the positives first, then the negatives."""
    k = len(record.positives)
    anchor = [j.rank for j in judgments[:k]]
    anchor_rank = None if None in anchor else min(anchor) + 1  # type: ignore[type-var]
    rows = []
    for i, judgment in enumerate(judgments):
        decision = None if i < k else decisions[i - k]
        rows.append({
            "query_id": record.query_id,
            "passage_id": record.positive_ids[i] if decision is None else record.negative_ids[i - k],
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
    records = read_mined(mined, require_scores=True)
    if limit is not None:
        records = records[:limit]
    out_records, rows, summary = relabel_records(records, judge, mode=mode, on_unsure=on_unsure,
                                                 chunk_size=chunk_size, show_progress_bar=show_progress_bar)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_mined(out / "mined.jsonl", out_records)
    write_jsonl(out / "judgments.jsonl", rows)
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
