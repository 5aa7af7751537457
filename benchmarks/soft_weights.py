"""What the teacher-weighted losses do to a batch: Soft-InfoNCE's negative weights, soft-label distillation's targets.

Soft-InfoNCE (``negmine.losses.SoftInfoNCE``, ``estimator="labels"``) weights each negative of a row by
``max(w_min, (beta - alpha p) / (beta - alpha / N))`` with ``p = softmax(teacher score / t)`` over the row's ``N``
negatives. In a batch of ``B`` rows of one positive and ``k`` mined negatives, a row has ``N = B (1 + k) - 1``
negatives: its own ``k`` mined ones (teacher-scored) and every other row's texts (not scored; the loss gives them the
row's lowest known score). This script replays that on a real mined file with the loss's own ``soft_weights``, so
one can see, before paying for a training run, whether a (t, alpha) setting changes anything.

Soft-label distillation (the ``negmine.losses.CWCL`` class with ``reference="labels"``: the teacher's query-document
scores as targets, not the paper's CWCL weights, which compare passages through a frozen encoder) trains towards a
soft target: weight 1 on each positive and
``f(r) = r' ** power`` on each mined negative (``r' = (r + 1) / 2`` with ``rescale``, else ``r``); in-batch texts get
0. The second table gives the share of that target on the mined negatives, per (rescale, power), with the loss's own
``continuous_weights``, next to the share the mined negatives already hold in the untrained student's softmax over
the same candidates (the teacher scores are the student's own cosines when the student mines): a target above it pulls
the student *towards* its hard negatives.

    python benchmarks/soft_weights.py --mined runs/scifact_dev/_shared/mine-minilm/mined.jsonl

No model is loaded; it takes seconds.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, markdown_tables  # noqa: E402

from negmine.data.mined import read_mined
from negmine.losses.cwcl import continuous_weights
from negmine.losses.soft_infonce import soft_weights

DEFAULT_MINED = Path("runs/scifact_dev/_shared/mine-minilm/mined.jsonl")
DEFAULT_OUT = Path("benchmarks/results/soft_weights.md")


def row_weights(scores: list[float], batch_size: int, alpha: float, beta: float, t: float,
                w_min: float) -> torch.Tensor:
    """Weights of one row's ``k`` mined negatives (teacher ``scores``) in a batch of ``batch_size`` such rows."""
    k = len(scores)
    total = batch_size * (1 + k) - 1
    relevance = torch.full((1, total), float("nan"), dtype=torch.float64)
    relevance[0, :k] = torch.tensor(scores, dtype=torch.float64)
    negative = torch.ones_like(relevance, dtype=torch.bool)
    return soft_weights(relevance, negative, alpha, beta, t, w_min)[0, :k]


def summarize(rows: list[list[float]], batch_size: int, alpha: float, beta: float, t: float,
              w_min: float) -> dict[str, float]:
    """Mean weight of each row's hardest mined negative, of all mined negatives, and the share clipped at ``w_min``."""
    weights = torch.stack([row_weights(s, batch_size, alpha, beta, t, w_min) for s in rows])
    return {"hardest": float(weights[:, 0].mean()), "mean": float(weights.mean()),
            "min": float(weights.min()), "clipped": float((weights <= w_min + 1e-12).double().mean())}


def mined_rows(records: list, path: Path, num_negatives: int) -> list[list[float]]:
    """Teacher scores of the first ``num_negatives`` negatives (hardest first) of every query that has that many."""
    rows = [sorted(r.negative_scores, reverse=True)[:num_negatives] for r in records
            if len(r.negative_scores) >= num_negatives]
    if not rows:
        raise SystemExit(f"{path}: no query has {num_negatives} scored negatives; lower --num-negatives")
    return rows


def cwcl_rows(records: list, num_negatives: int, max_positives: int) -> list[tuple[list[float], list[float]]]:
    """``(positive scores, negative scores)`` of every query with ``num_negatives`` scored negatives (a training row
    holds at most ``max_positives`` positives)."""
    return [(r.positive_scores[:max_positives], sorted(r.negative_scores, reverse=True)[:num_negatives])
            for r in records if len(r.negative_scores) >= num_negatives and r.positive_scores]


def _scored_candidates(positives: list[float], negatives: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, P + k)`` teacher scores of a row's candidates and the mask of its positives."""
    scores = torch.tensor([positives + negatives], dtype=torch.float64)
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[0, :len(positives)] = True
    return scores, positive


def cwcl_target_share(rows: list[tuple[list[float], list[float]]], power: float, rescale: bool) -> float:
    """Mean share of CWCL's soft target (the loss's own ``continuous_weights``) on the mined negatives."""
    shares = []
    for positives, negatives in rows:
        scores, positive = _scored_candidates(positives, negatives)
        weights = continuous_weights(scores, positive, ~positive, power, 0.0, rescale)[0]
        shares.append(float(weights[~positive[0]].sum() / weights.sum()))
    return sum(shares) / len(shares)


def student_share(rows: list[tuple[list[float], list[float]]], temperature: float) -> float:
    """Mean share of the mined negatives in the student's softmax at ``temperature`` over the same candidates."""
    shares = []
    for positives, negatives in rows:
        scores, positive = _scored_candidates(positives, negatives)
        shares.append(float(torch.softmax(scores[0] / temperature, dim=0)[~positive[0]].sum()))
    return sum(shares) / len(shares)


def cwcl_report(rows: list[tuple[list[float], list[float]]], args: argparse.Namespace) -> list[str]:
    student = student_share(rows, args.temperature)
    lines = [
        "",
        "## Soft-label distillation targets (the CWCL class on teacher scores) on the same mined negatives",
        "",
        f"{len(rows)} queries, up to {args.max_positives} positives and {args.num_negatives} mined negatives per row "
        f"(in-batch texts get target 0). The untrained student's softmax at temperature {args.temperature:g} over "
        f"the same candidates puts **{100 * student:.1f}%** on the mined negatives.",
        "",
        "| rescale | power | share of the target on the mined negatives | vs the student's own share |",
        "|---|---:|---:|---|",
    ]
    for rescale in (True, False):
        for power in args.power:
            target = cwcl_target_share(rows, power, rescale)
            direction = "pulls them closer" if target > student else "pushes them away, softly"
            lines.append(f"| {'(r + 1) / 2' if rescale else 'r'} | {power:g} | {100 * target:.1f}% | {direction} |")
    return lines


def report(path: Path, records: list, args: argparse.Namespace) -> str:
    rows = mined_rows(records, path, args.num_negatives)
    n = args.batch_size * (1 + args.num_negatives) - 1
    lines = [
        "# Soft-InfoNCE weights on mined negatives",
        "",
        f"Mined file `{path}`: {len(rows)} queries with {args.num_negatives} teacher-scored negatives. Batch "
        f"{args.batch_size} rows of 1 positive + {args.num_negatives} negatives, so N = {n} negatives per row "
        f"({args.num_negatives} mined, {n - args.num_negatives} in-batch at the row's lowest score). beta = "
        f"{args.beta}, w_min = {args.w_min}. A weight of 1 is plain InfoNCE; lower means the negative is pushed "
        "away less.",
        "",
        "| alpha | t | weight of the hardest mined negative (mean) | mean weight of the mined negatives | lowest "
        "weight | share clipped at w_min |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for alpha in args.alpha:
        for t in args.t:
            if args.beta <= alpha / n:
                continue
            s = summarize(rows, args.batch_size, alpha, args.beta, t, args.w_min)
            lines.append(f"| {alpha:g} | {t:g} | {s['hardest']:.3f} | {s['mean']:.3f} | {s['min']:.3f} | "
                         f"{100 * s['clipped']:.1f}% |")
    lines += cwcl_report(cwcl_rows(records, args.num_negatives, args.max_positives), args)
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mined", type=Path, default=DEFAULT_MINED, help="mined.jsonl with teacher scores")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-negatives", type=int, default=5)
    p.add_argument("--alpha", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--t", type=float, nargs="+", default=[1.0, 0.1, 0.05, 0.02, 0.01])
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--w-min", type=float, default=0.1)
    p.add_argument("--power", type=float, nargs="+", default=[1.0, 4.0, 8.0], help="CWCL sharpening exponents")
    p.add_argument("--max-positives", type=int, default=2, help="positives per training row (CWCL table)")
    p.add_argument("--temperature", type=float, default=0.05, help="the student's softmax temperature (CWCL table)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown table; '-' prints only")
    args = p.parse_args(argv)
    if min(args.batch_size, args.num_negatives, args.max_positives) < 1:
        p.error("--batch-size, --num-negatives and --max-positives must be >= 1")
    if any(not math.isfinite(v) or v <= 0 for v in [*args.t, *args.power, args.temperature]):
        p.error("every --t, --power and --temperature must be a finite number > 0")
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse(argv)
    text = report(args.mined, read_mined(args.mined, require_scores=True), args)
    data = {"mined": str(args.mined), "batch_size": args.batch_size, "num_negatives": args.num_negatives,
            "beta": args.beta, "w_min": args.w_min, "temperature": args.temperature, "tables": markdown_tables(text)}
    return Report("soft_weights", "benchmarks/soft_weights.py", argv, out=args.out).write(text, data)


if __name__ == "__main__":
    main()
