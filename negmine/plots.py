"""Score histograms (PNG) for mining runs."""

from __future__ import annotations

import os
from collections.abc import Sequence


def score_histogram(
    path: str | os.PathLike, positive: Sequence[float], negative: Sequence[float], title: str = "Teacher scores"
) -> None:
    """Overlaid histograms of positive and negative scores, written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from negmine.io import atomic_open

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    values = list(positive) + list(negative)
    bins = 40 if values else 1
    ax.hist(negative, bins=bins, alpha=0.6, label=f"negatives (n={len(negative):,})", color="tab:red", density=True)
    ax.hist(positive, bins=bins, alpha=0.6, label=f"positives (n={len(positive):,})", color="tab:blue", density=True)
    ax.set_xlabel("similarity to the query (higher = more similar)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
