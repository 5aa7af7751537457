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


@dataclass
class MiningStats:
    """Counts that add up: ``retrieved = padding + Σ excluded + Σ filtered + eligible`` per candidate, and
    ``queries = enough + too_few`` with ``too_few = dropped + kept_fewer + padded``."""

    queries: int = 0
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
    positive_scores: list[float] = field(default_factory=list)
    negative_scores: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queries": {
                "total": self.queries,
                "enough_negatives": self.enough,
                "too_few": sum(self.too_few.values()),
                "too_few_by_policy": dict(self.too_few),
                "written": self.queries - self.too_few.get("dropped", 0),
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
