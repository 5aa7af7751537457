"""What hard-negative mixing (MoCHi) adds to real training batches before the first update.

``negmine.losses.HardNegativeMixing`` appends ``s`` negative mixes and ``s'`` query mixes to each query's InfoNCE
candidates. This script builds batches from a mined file exactly as one training row per query (query, first
positive, ``k`` mined negatives), embeds them with the untrained student (through the embedding cache, so a corpus
that was mined is not encoded again) and runs the loss's own code on them. It reports the loss with and without
mixing, the softmax probability of the positive, the share the synthetic negatives take, and how often a synthetic
point scores above the positive: the numbers that say, before a 40-minute training run, whether the synthetic
negatives are a useful push or drown the positive.

    python benchmarks/mixing_probe.py --data scifact --mined runs/scifact_dev/_shared/mine-minilm/mined.jsonl
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402

from negmine.data.mined import read_mined

DEFAULT_MINED = Path("runs/scifact_dev/_shared/mine-minilm/mined.jsonl")
DEFAULT_OUT = Path("benchmarks/results/mixing_probe.md")
MEASURES = {
    "loss_infonce": "InfoNCE loss",
    "loss_mixing": "loss with mixing",
    "mean_neg_log_p_infonce": "mean -log p(positive), InfoNCE (equals the InfoNCE loss)",
    "p_positive_infonce": "softmax probability of the positive, InfoNCE",
    "p_positive_mixing": "softmax probability of the positive, with mixing",
    "p_synthetic": "softmax share of the synthetic negatives",
    "query_mixes_above_positive": "query mixes scoring above the positive",
    "negative_mixes_above_positive": "negative mixes scoring above the positive",
    "cos_positive": "cosine of the positive",
    "cos_hardest_negative": "cosine of the hardest real negative",
    "cos_query_mix": "cosine of a query mix (mean)",
    "cos_negative_mix": "cosine of a negative mix (mean)",
}


def embed_rows(args: argparse.Namespace, records: list) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Untrained-student embeddings of the split's queries and the whole corpus (the lists mining encodes)."""
    from negmine.data import load_data
    from negmine.encoders import EmbeddingCache, load_encoder
    from negmine.retrieve import Retriever

    data = load_data(args.data, args.split)
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir)
    retriever = Retriever(load_encoder(args.retriever), cache=cache, batch_size=args.batch_size_encode)
    query_ids = data.split_query_ids
    known = set(query_ids)
    missing = [r.query_id for r in records if r.query_id not in known]
    if missing:  # before any encoding, which can take minutes
        raise SystemExit(f"{args.mined}: query {missing[0]!r} is not in {args.data} split {args.split!r}")
    doc_ids = list(data.corpus)
    queries = retriever.encode_queries([data.queries[q] for q in query_ids])
    docs = retriever.encode_documents([data.doc_text(d) for d in doc_ids])
    return (dict(zip(query_ids, torch.from_numpy(queries.copy()))),
            dict(zip(doc_ids, torch.from_numpy(docs.copy()))))


def batch_columns(batch: list, queries: dict, docs: dict, num_negatives: int) -> list[torch.Tensor]:
    """``[queries, first positives, negative 1, …, negative k]``, each ``(B, d)``: the loss's column layout."""
    columns = [[queries[r.query_id] for r in batch], [docs[r.positive_ids[0]] for r in batch]]
    columns += [[docs[r.negative_ids[j]] for r in batch] for j in range(num_negatives)]
    return [torch.stack(column) for column in columns]


@dataclass(frozen=True)
class Setting:
    """One mixing configuration: ``N`` hardest, ``s`` negative mixes, ``s'`` query mixes, temperature ``t``."""

    num_hardest: int = 16
    num_negative_mixes: int = 16
    num_query_mixes: int = 4
    temperature: float = 0.05

    KEYS: ClassVar[dict[str, str]] = {"N": "num_hardest", "s": "num_negative_mixes", "sq": "num_query_mixes",
                                      "t": "temperature"}

    @classmethod
    def parse(cls, text: str) -> Setting:
        """``"N=16,s=16,sq=4,t=0.05"`` (any subset; the rest keep the recipe's values)."""
        values: dict[str, Any] = {}
        for part in filter(None, text.split(",")):
            key, _, value = part.partition("=")
            if key.strip() not in cls.KEYS:
                raise argparse.ArgumentTypeError(f"{text!r}: unknown key {key!r}; expected N, s, sq or t")
            name = cls.KEYS[key.strip()]
            values[name] = float(value) if name == "temperature" else int(value)
        setting = cls(**values)
        if setting.num_hardest < 1 or min(setting.num_negative_mixes, setting.num_query_mixes) < 0 \
                or not setting.temperature > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: needs N >= 1, s >= 0, sq >= 0 and t > 0")
        return setting

    def label(self) -> str:
        return f"N={self.num_hardest}, s={self.num_negative_mixes}, s'={self.num_query_mixes}, t={self.temperature:g}"


DEFAULT_SETTINGS = ("N=16,s=16,sq=4,t=0.05", "sq=0", "s=4,sq=0", "N=64", "t=0.1")


def probe_batch(columns: list[torch.Tensor], setting: Setting, seed: int) -> dict[str, list[float]]:
    """The measures of one batch, per row (losses once per batch)."""
    from negmine.losses import HardNegativeMixing, InfoNCE

    base = InfoNCE(None, temperature=setting.temperature)
    mixing = HardNegativeMixing(None, base, num_hardest=setting.num_hardest,
                                num_negative_mixes=setting.num_negative_mixes,
                                num_query_mixes=setting.num_query_mixes, seed=seed)
    batch = base.build_batch(columns)
    state = mixing.generator.get_state()
    synthetic = mixing.synthetic_logits(batch)  # (B, s + s'), already divided by the temperature
    mixing.generator.set_state(state)  # the loss below draws the same synthetic points
    rows = torch.arange(batch.batch_size)
    logits = batch.logits.masked_fill(~(batch.positive | batch.negative), float("-inf"))
    positive = logits[rows, rows]  # row i's positive is candidate i (the first positive column)
    with_mixing = torch.softmax(torch.cat([logits, synthetic], 1), 1)
    negatives = logits.clone()
    negatives[rows, rows] = float("-inf")
    s, t = setting.num_negative_mixes, setting.temperature
    negative_mixes, query_mixes = synthetic[:, :s], synthetic[:, s:]
    measures = {
        "loss_infonce": [float(base.compute_loss_from_embeddings(columns))],
        "loss_mixing": [float(mixing.compute_loss_from_embeddings(columns))],
        "mean_neg_log_p_infonce": (-torch.log_softmax(logits, 1)[rows, rows]).tolist(),
        "p_positive_infonce": torch.softmax(logits, 1)[rows, rows].tolist(),
        "p_positive_mixing": with_mixing[rows, rows].tolist(),
        "p_synthetic": with_mixing[:, logits.size(1):].sum(1).tolist(),
        "cos_positive": (positive * t).tolist(),
        "cos_hardest_negative": (negatives.max(1).values * t).tolist(),
    }
    for name, points in (("query_mix", query_mixes), ("negative_mix", negative_mixes)):
        if points.size(1):
            measures[f"{name}es_above_positive"] = (points > positive[:, None]).double().mean(1).tolist()
            measures[f"cos_{name}"] = (points.mean(1) * t).tolist()
    return measures


def probe(args: argparse.Namespace) -> tuple[list[dict[str, float]], int]:
    """Per setting, the mean of every measure over all full batches; returns ``(means per setting, batches)``."""
    records = [r for r in read_mined(args.mined) if len(r.negative_ids) >= args.num_negatives]
    random.Random(args.seed).shuffle(records)
    if len(records) < args.batch_size:
        raise SystemExit(f"{args.mined}: {len(records)} queries with {args.num_negatives} negatives, fewer than one "
                         f"batch of {args.batch_size}")
    queries, docs = embed_rows(args, records)
    batches = len(records) // args.batch_size
    columns = [batch_columns(records[b * args.batch_size:(b + 1) * args.batch_size], queries, docs,
                             args.num_negatives) for b in range(batches)]
    results = []
    for setting in args.setting:
        collected: dict[str, list[float]] = {key: [] for key in MEASURES}
        for b, batch in enumerate(columns):  # not under no_grad: the loss mixes only in forward calls with gradients
            for key, values in probe_batch(batch, setting, args.seed + b).items():
                collected[key] += values
        results.append({key: statistics.mean(v) for key, v in collected.items() if v})
    return results, batches


def report(results: list[dict[str, float]], batches: int, args: argparse.Namespace) -> str:
    lines = [
        "# Hard-negative mixing on real batches, before the first update",
        "",
        f"Mined file `{args.mined}`; data `{args.data}` split `{args.split}`; student `{args.retriever}` (untrained). "
        f"{batches} batches of {args.batch_size} rows (query, first positive, {args.num_negatives} mined negatives; "
        f"in-batch negatives as in training), {batches * args.batch_size} rows in all. Settings: N hardest "
        "negatives mixed, s negative mixes, s' query mixes (the query's share b ~ U(0, 0.5)), temperature t; the "
        "first column is the `mixing` recipe of `benchmarks/scifact_quality.py`.",
        "",
        "| measure (mean over rows) | " + " | ".join(s.label() for s in args.setting) + " |",
        "|---|" + "---:|" * len(args.setting),
    ]
    for key, label in MEASURES.items():
        lines.append(f"| {label} | " + " | ".join(f"{r[key]:.4f}" if key in r else "—" for r in results) + " |")
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mined", type=Path, default=DEFAULT_MINED, help="mined.jsonl (the training negatives)")
    p.add_argument("--data", default="scifact", help="the data the file was mined from (folder or name)")
    p.add_argument("--split", default="train")
    p.add_argument("--retriever", default="minilm", help="the student (preset or model folder)")
    p.add_argument("--cache-dir", default=None, help="embedding cache (default $NEGMINE_CACHE)")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batch-size-encode", type=int, default=32)
    p.add_argument("--num-negatives", type=int, default=5)
    p.add_argument("--setting", type=Setting.parse, action="append",
                   help="N=…,s=…,sq=…,t=… (repeatable; default: the recipe and four variants)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown table; '-' prints only")
    args = p.parse_args(argv)
    if min(args.batch_size, args.num_negatives) < 1:
        p.error("--batch-size and --num-negatives must be >= 1")
    args.setting = args.setting or [Setting.parse(text) for text in DEFAULT_SETTINGS]
    return args


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    args = parse(argv)
    results, batches = probe(args)
    text = report(results, batches, args)
    data = {"mined": str(args.mined), "batches": batches, "batch_size": args.batch_size,
            "settings": [s.label() for s in args.setting], "results": results}
    Report("mixing_probe", "benchmarks/mixing_probe.py", argv, out=args.out).write(text, data)
    return results


if __name__ == "__main__":
    main()
