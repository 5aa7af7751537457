"""Mining statistics: where every retrieved candidate went, and score distributions. Written as ``stats.json``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def summarize(values: list[float] | np.ndarray) -> dict[str, float]:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return {"count": 0}
    out = {"count": int(x.size), "mean": float(x.mean()), "std": float(x.std())}
    out.update({f"q{int(q * 100):02d}": float(v) for q, v in zip(QUANTILES, np.quantile(x, QUANTILES))})
    return out


DROP_WARNING_SHARE = 0.2  # warn when more than this share of the queries is not written

#: what to change when a filter removes most candidates of the dropped queries
FILTER_FLAGS = {
    "rank_range": "a wider --range (e.g. 0:100)",
    "score_threshold": "a higher --max-score (or a lower --min-score)",
    "margin_pos": "a smaller --margin",
    "perc_pos": "a --percentage closer to 1",
    "near_duplicate": "a higher --near-duplicate",
}


def drop_warning(stats: MiningStats, too_few: str) -> str | None:
    """The warning for a run that wrote at most 80 % of its queries, or ``None``."""
    total = stats.queries
    skipped = sum(stats.skipped.values())
    dropped = stats.too_few.get("dropped", 0)
    if not total or (skipped + dropped) <= DROP_WARNING_SHARE * total:
        return None
    parts = [f"{skipped + dropped:,} of {total:,} queries ({(skipped + dropped) / total:.0%}) were not written"]
    if skipped:
        parts.append(f"{skipped:,} have no positive in the corpus")
    if dropped:
        removed = {k: v for k, v in stats.dropped_removed.items() if v > 0}
        text = f"{dropped:,} had fewer than the requested negatives"
        if removed:
            name = max(removed, key=removed.__getitem__)
            hint = FILTER_FLAGS.get(name, f"relaxing {name}")
            if name in ("margin_pos", "perc_pos") and stats.margin_reference != "each":
                hint = f"--margin-reference each (now {stats.margin_reference}) or {hint}"
            text += (
                f"; the filter that removed most of their candidates is {name} ({removed[name]:,}): "
                f"{hint} would keep more of them"
            )
        if too_few == "drop":
            text += ", or --too-few keep / pad keeps such queries"
        parts.append(text)
    return "; ".join(parts)


@dataclass
class MiningStats:
    """Counts that add up: ``retrieved = padding + Σ excluded + Σ filtered + eligible`` per candidate,
    ``queries = Σ skipped + enough + too_few`` and ``pairs = enough + dropped + kept_fewer + padded`` per (query,
    positive) pair. With ``margin_reference="each"`` a candidate counts as removed by a relative filter when no
    positive of its query accepts it (it fails the highest positive's threshold)."""

    queries: int = 0
    margin_reference: str = "each"
    skipped: Counter = field(default_factory=Counter)
    retrieved: int = 0
    padding: int = 0
    excluded: Counter = field(default_factory=Counter)
    filtered: dict[str, int] = field(default_factory=dict)
    eligible: int = 0
    enough: int = 0
    too_few: Counter = field(default_factory=Counter)
    selected: int = 0
    pad_negatives: int = 0
    rows: int = 0
    pairs: Counter = field(default_factory=Counter)
    dropped_removed: dict[str, int] = field(default_factory=dict)
    depth: list[int] = field(default_factory=list)
    blocks: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    positive_scores: list[float] = field(default_factory=list)
    negative_scores: list[float] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.queries - sum(self.skipped.values()) - self.too_few.get("dropped", 0)

    def to_dict(self) -> dict[str, Any]:
        depth = np.asarray(self.depth, dtype=np.int64)
        return {
            "settings": {"margin_reference": self.margin_reference, **self.settings},
            "warnings": list(self.warnings),
            "queries": {
                "total": self.queries,
                "skipped": dict(self.skipped),
                "enough_negatives": self.enough,
                "too_few": sum(self.too_few.values()),
                "too_few_by_policy": dict(self.too_few),
                "written": self.written,
                "dropped_candidates_removed_by": dict(self.dropped_removed),
            },
            "pairs": {
                "total": sum(self.pairs.values()),
                "enough_negatives": self.pairs.get("enough", 0),
                "too_few_by_policy": {k: v for k, v in self.pairs.items() if k != "enough"},
                "written": sum(self.pairs.values()) - self.pairs.get("dropped", 0),
            },
            "search": {
                "depth_max": int(depth.max(initial=0)),
                "depth_mean": float(depth.mean()) if depth.size else 0.0,
                "blocks": self.blocks,
            },
            "candidates": {
                "retrieved": self.retrieved,
                "padding": self.padding,
                "excluded": dict(self.excluded),
                "filtered": dict(self.filtered),
                "eligible": self.eligible,
            },
            "negatives": {"selected": self.selected, "padded": self.pad_negatives},
            "rows": self.rows,
            "scores": {"positive": summarize(self.positive_scores), "negative": summarize(self.negative_scores)},
        }

    def table(self) -> list[tuple[str, str]]:
        """(label, value) rows for a printed summary."""
        d = self.to_dict()
        rows = [
            ("queries", f"{self.queries:,}"),
            ("written", f"{d['queries']['written']:,}"),
            ("too few negatives", f"{d['queries']['too_few']:,} ({dict(self.too_few) or '-'})"),
        ]
        if self.skipped:
            rows.append(("skipped", f"{sum(self.skipped.values()):,} ({dict(self.skipped)})"))
        rows += [
            ("(query, positive) pairs written", f"{d['pairs']['written']:,} of {d['pairs']['total']:,}"),
            ("candidates retrieved", f"{self.retrieved:,}"),
        ]
        rows += [(f"  excluded: {k}", f"{v:,}") for k, v in self.excluded.items()]
        rows += [(f"  filtered: {k}", f"{v:,}") for k, v in self.filtered.items()]
        rows += [
            ("  eligible", f"{self.eligible:,}"),
            ("negatives selected", f"{self.selected:,}"),
            ("rows written", f"{self.rows:,}"),
        ]
        for kind in ("positive", "negative"):
            s = d["scores"][kind]
            if s.get("count"):
                rows.append(
                    (
                        f"{kind} score mean [q05, q50, q95]",
                        f"{s['mean']:.3f} [{s['q05']:.3f}, {s['q50']:.3f}, {s['q95']:.3f}]",
                    )
                )
        return rows
