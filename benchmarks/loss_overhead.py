"""Training-step time of each negmine loss against sentence-transformers' MultipleNegativesRankingLoss.

#### What is measured
One training step = the loss's forward (embedding all columns with the model, then the loss) + backward + AdamW
step, on the same pre-tokenized batch of real SciFact texts, with all-MiniLM-L6-v2 in train mode. Measurements are
interleaved: every repeat times MNRL and then each loss once (the order is rotated every repeat), so machine load
hits all of them alike; the reported ratio is the median over repeats of (loss step time / MNRL step time in the
same repeat). A second column times the loss alone (``compute_loss_from_embeddings`` + backward on fixed
embeddings), which is the part a negmine loss adds. Target: step-time ratio <= 1.15.

#### Run
    python benchmarks/loss_overhead.py                      # writes benchmarks/results/loss_overhead.md
    python benchmarks/loss_overhead.py --batch-size 32 --repeats 9 --out -
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from _report import publish

#### constants
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
TARGET = 1.15


def build_batch(data_dir: Path, batch_size: int, num_negatives: int,
                seed: int) -> tuple[list[list[str]], torch.Tensor]:
    """Columns ``anchor, positive, negative_1..n`` of real SciFact texts, and teacher-like scores ``(B, 1 + n)``."""
    from negmine.data import doc_text, load_data

    data = load_data(data_dir, "train")
    rng = random.Random(seed)
    query_ids = data.split_query_ids[:batch_size]
    doc_ids = list(data.corpus)
    columns: list[list[str]] = [[] for _ in range(2 + num_negatives)]
    for qid in query_ids:
        positive = data.positives(qid)[0]
        negatives = rng.sample([d for d in doc_ids if d not in data.positives(qid)], num_negatives)
        columns[0].append(data.queries[qid])
        for k, doc_id in enumerate([positive, *negatives], start=1):
            columns[k].append(doc_text(data.corpus[doc_id]))
    scores = torch.tensor([[rng.uniform(0.6, 0.9)] + [rng.uniform(0.1, 0.6) for _ in range(num_negatives)]
                           for _ in query_ids])
    return columns, scores


def make_losses(model) -> dict[str, torch.nn.Module]:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from negmine.losses import CWCL, Dice, HardNegativeMixing, InfoNCE, SoftInfoNCE

    return {
        "MNRL (sentence-transformers)": MultipleNegativesRankingLoss(model),
        "InfoNCE": InfoNCE(model),
        "InfoNCE (margin=0.05, symmetric)": InfoNCE(model, margin=0.05, symmetric=True),
        "SoftInfoNCE (teacher scores)": SoftInfoNCE(model, estimator="labels"),
        "SoftInfoNCE (BM25)": SoftInfoNCE(model, estimator="bm25"),
        "Dice (+ InfoNCE)": Dice(model, infonce_weight=1.0, dice_weight=0.5),
        "CWCL (teacher scores)": CWCL(model, power=2.0),
        "MoCHi mixing (16, 16, 4)": HardNegativeMixing(model, InfoNCE(model), num_hardest=16, num_negative_mixes=16,
                                                        num_query_mixes=4),
    }


def time_step(model, loss, features, labels, optimizer) -> float:
    start = time.perf_counter()
    value = loss([dict(f) for f in features], labels)
    value.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def time_loss_only(loss, embeddings, labels, features) -> float:
    """The loss on fixed embeddings (plus the inputs it derives from the token ids), forward + backward."""
    leaves = [e.detach().clone().requires_grad_(True) for e in embeddings]
    start = time.perf_counter()
    inputs = loss.collect_inputs(features) if hasattr(loss, "collect_inputs") else {}
    if hasattr(loss, "base") and hasattr(loss.base, "collect_inputs"):
        inputs = loss.base.collect_inputs(features)
    value = loss.compute_loss_from_embeddings(leaves, labels, **inputs)
    value.backward()
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> str:
    from sentence_transformers import SentenceTransformer

    from negmine.encoders.presets import bundled_minilm_path

    torch.manual_seed(args.seed)
    load_before = os.getloadavg()[0]
    model = SentenceTransformer(str(args.model or bundled_minilm_path()), device="cpu")
    model.max_seq_length = args.max_seq_length
    model.train()
    columns, labels = build_batch(args.data, args.batch_size, args.num_negatives, args.seed)
    features = [model.preprocess(texts) for texts in columns]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    losses = make_losses(model)
    names = list(losses)
    baseline = names[0]

    with torch.no_grad():
        embeddings = [model(dict(f))["sentence_embedding"].detach() for f in features]
    step_times = {name: [] for name in names}
    loss_times = {name: [] for name in names}
    for repeat in range(args.warmup + args.repeats):
        order = names[repeat % len(names):] + names[: repeat % len(names)]
        for name in order:
            step = time_step(model, losses[name], features, labels, optimizer)
            alone = min(time_loss_only(losses[name], embeddings, labels, features) for _ in range(3))
            if repeat >= args.warmup:
                step_times[name].append(step)
                loss_times[name].append(alone)
        print(f"repeat {repeat + 1}/{args.warmup + args.repeats} done", file=sys.stderr)
    load_after = os.getloadavg()[0]

    lines = [
        "# Loss overhead: training-step time vs sentence-transformers' MultipleNegativesRankingLoss",
        "",
        f"Generated by `python benchmarks/loss_overhead.py` on {time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        f"- Hardware: {args.hardware} ({platform.machine()}, `torch.get_num_threads()` = {torch.get_num_threads()}),"
        f" no GPU. 1-minute load average {load_before:.1f} at the start and {load_after:.1f} at the end (a value"
        " above the core count means other jobs shared the CPU, hence the interleaving and medians).",
        f"- Software: Python {platform.python_version()}, torch {torch.__version__}, "
        f"sentence-transformers {_version('sentence-transformers')}.",
        f"- Model: all-MiniLM-L6-v2, train mode, max_seq_length {args.max_seq_length}; batch {args.batch_size} rows x "
        f"(anchor, positive, {args.num_negatives} negatives) of SciFact train texts; AdamW step included.",
        f"- {args.repeats} interleaved repeats (+{args.warmup} warm-up), order rotated every repeat. "
        "Step ratio = median over repeats of (loss step / MNRL step in the same repeat). "
        "Loss-alone = the loss's own forward + backward on fixed embeddings (best of 3), in milliseconds.",
        "",
        f"| loss | median step (s) | median step ratio vs MNRL | target <= {TARGET} | loss alone (ms) |",
        "| --- | ---: | ---: | :---: | ---: |",
    ]
    for name in names:
        median_step = statistics.median(step_times[name])
        ratio = statistics.median(s / b for s, b in zip(step_times[name], step_times[baseline]))
        ok = "-" if name == baseline else ("yes" if ratio <= TARGET else "no")
        lines.append(f"| {name} | {median_step:.3f} | {ratio:.3f} | {ok} | "
                     f"{1000 * statistics.median(loss_times[name]):.2f} |")
    return "\n".join(lines) + "\n"


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR SciFact folder")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-negatives", type=int, default=3)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hardware", default="2-core CPU")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "loss_overhead.md"),
                        help="Markdown output file, or - for stdout only")
    args = parser.parse_args()
    table = run(args)
    publish(table, args.out)


if __name__ == "__main__":
    main()
