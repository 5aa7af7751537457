"""Training-step time of each negmine loss against sentence-transformers' MultipleNegativesRankingLoss.

#### What is measured
One training step = the loss's forward (embedding all columns with the model, then the loss) + backward + AdamW
step, on the same pre-tokenized batch of real SciFact texts, with all-MiniLM-L6-v2 in train mode. Measurements are
interleaved: every repeat times MNRL and then each loss once (the order is rotated every repeat), so machine load
hits all of them alike; the reported ratio is the median over repeats of (loss step time / MNRL step time in the
same repeat). A second column times the loss alone (``compute_loss_from_embeddings`` + backward on fixed
embeddings), which is the part a negmine loss adds. Target: step-time ratio <= 1.15. The report gives the number of
repeats and the spread of each ratio (min, quartiles, max over repeats) and the load average sampled during the timed
repeats: run it on a quiet machine (load below the core count) for numbers worth quoting.

#### Run
    python benchmarks/loss_overhead.py                      # 256 tokens; writes benchmarks/results/loss_overhead.md
    python benchmarks/loss_overhead.py --batch-size 32 --repeats 15 --out -
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402

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


def make_losses(model, reference) -> dict[str, torch.nn.Module]:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from negmine.losses import CWCL, Dice, HardNegativeMixing, InfoNCE, ListwiseDistillation, MarginMSE, SoftInfoNCE

    return {
        "MNRL (sentence-transformers)": MultipleNegativesRankingLoss(model),
        "InfoNCE": InfoNCE(model),
        "InfoNCE (margin=0.05, symmetric)": InfoNCE(model, margin=0.05, symmetric=True),
        "SoftInfoNCE (teacher scores)": SoftInfoNCE(model, estimator="labels"),
        "SoftInfoNCE (BM25)": SoftInfoNCE(model, estimator="bm25"),
        "Dice (+ InfoNCE)": Dice(model, infonce_weight=1.0, dice_weight=0.5),
        "soft-label distillation (CWCL class, teacher scores)": CWCL(model, power=2.0),
        "CWCL (paper weights, frozen reference)": CWCL(model, reference=reference),
        "MoCHi mixing (16, 16, 4)": HardNegativeMixing(model, InfoNCE(model), num_hardest=16, num_negative_mixes=16,
                                                        num_query_mixes=4),
        "Listwise KL (+ 0.1 InfoNCE)": ListwiseDistillation(model, infonce_weight=0.1),
        "MarginMSE": MarginMSE(model),
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
    if getattr(loss, "reference_model", None) is not None:  # CWCL's paper weights: the frozen encoder's forward
        from negmine.losses._common import reference_embeddings

        inputs["reference_embeddings"] = reference_embeddings(loss.reference_model, loss.model, features)
    value = loss.compute_loss_from_embeddings(leaves, labels, **inputs)
    value.backward()
    return time.perf_counter() - start


def quartiles(values: list[float]) -> dict[str, float]:
    """min, first quartile, median, third quartile, max (``statistics.quantiles``' inclusive method)."""
    if len(values) == 1:
        return dict.fromkeys(("min", "q1", "median", "q3", "max"), values[0])
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"min": min(values), "q1": q1, "median": median, "q3": q3, "max": max(values)}


def run(args: argparse.Namespace, report: Report) -> tuple[str, dict]:
    from sentence_transformers import SentenceTransformer

    from negmine.encoders.presets import bundled_minilm_path

    torch.manual_seed(args.seed)
    location = str(args.model or bundled_minilm_path())
    model = SentenceTransformer(location, device="cpu")
    model.max_seq_length = args.max_seq_length
    model.train()
    reference = SentenceTransformer(location, device="cpu").eval().requires_grad_(False)  # CWCL's frozen encoder
    reference.max_seq_length = args.max_seq_length
    columns, labels = build_batch(args.data, args.batch_size, args.num_negatives, args.seed)
    features = [model.preprocess(texts) for texts in columns]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    losses = make_losses(model, reference)
    names = list(losses)
    baseline = names[0]

    with torch.no_grad():
        embeddings = [model(dict(f))["sentence_embedding"].detach() for f in features]
    step_times: dict[str, list[float]] = {name: [] for name in names}
    loss_times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.warmup + args.repeats):
        order = names[repeat % len(names):] + names[: repeat % len(names)]
        with report.phase("warm-up" if repeat < args.warmup else "timed repeats"):
            for name in order:
                step = time_step(model, losses[name], features, labels, optimizer)
                alone = min(time_loss_only(losses[name], embeddings, labels, features) for _ in range(3))
                if repeat >= args.warmup:
                    step_times[name].append(step)
                    loss_times[name].append(alone)
        print(f"repeat {repeat + 1}/{args.warmup + args.repeats} done", file=sys.stderr)

    rows = []
    for name in names:
        ratios = [s / b for s, b in zip(step_times[name], step_times[baseline])]
        rows.append({"loss": name, "step_seconds": quartiles(step_times[name]), "ratio": quartiles(ratios),
                     "loss_alone_ms": 1000 * statistics.median(loss_times[name]),
                     "meets_target": None if name == baseline else quartiles(ratios)["median"] <= TARGET,
                     "raw_step_seconds": step_times[name], "raw_loss_alone_seconds": loss_times[name]})
    data = {"repeats": args.repeats, "warmup": args.warmup, "batch_size": args.batch_size,
            "num_negatives": args.num_negatives, "max_seq_length": args.max_seq_length,
            "torch_threads": torch.get_num_threads(), "target": TARGET, "rows": rows,
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "sentence-transformers": _version("sentence-transformers")}}
    lines = [
        "# Loss overhead: training-step time vs sentence-transformers' MultipleNegativesRankingLoss",
        "",
        f"- `torch.get_num_threads()` = {torch.get_num_threads()}; Python {platform.python_version()}, torch "
        f"{torch.__version__}, sentence-transformers {_version('sentence-transformers')}. Read the load average "
        "below: above the core count, other jobs shared the CPU and the ratios are not a quiet machine's.",
        f"- Model: all-MiniLM-L6-v2, train mode, max_seq_length {args.max_seq_length}; batch {args.batch_size} rows x "
        f"(anchor, positive, {args.num_negatives} negatives) of SciFact train texts; AdamW step included.",
        f"- {args.repeats} interleaved repeats (+{args.warmup} warm-up), order rotated every repeat. "
        "Step ratio = (loss step / MNRL step in the same repeat); the table gives its median and its spread over "
        "the repeats (min, quartiles, max). Loss alone = the loss's own forward + backward on fixed embeddings "
        "(best of 3 per repeat, median over repeats), in milliseconds.",
        "",
        f"| loss | median step (s) | step ratio vs MNRL: median | min – max | quartiles | target <= {TARGET} | "
        "loss alone (ms) |",
        "| --- | ---: | ---: | :---: | :---: | :---: | ---: |",
    ]
    for row in rows:
        r = row["ratio"]
        ok = "-" if row["meets_target"] is None else ("yes" if row["meets_target"] else "no")
        lines.append(f"| {row['loss']} | {row['step_seconds']['median']:.3f} | {r['median']:.3f} | "
                     f"{r['min']:.3f} – {r['max']:.3f} | {r['q1']:.3f} – {r['q3']:.3f} | {ok} | "
                     f"{row['loss_alone_ms']:.2f} |")
    return "\n".join(lines), data


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def step_benchmark_main(name: str, doc: str, run_fn, argv: list[str] | None, *, batch_size: int,
                        num_negatives: int, repeats: int, negatives_help: str = "") -> dict:
    """Arguments, run and report of a step-time benchmark on one batch of SciFact texts (this one and
    ``train_precision.py``): ``run_fn(args, report) -> (markdown, data)`` writes ``results/NAME.md`` and its twin."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR SciFact folder")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--num-negatives", type=int, default=num_negatives, help=negatives_help or None)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / f"{name}.md"),
                        help="Markdown output file, or - for stdout only")
    args = parser.parse_args(argv)
    report = Report(name, f"benchmarks/{name}.py", argv, out=args.out)
    text, data = run_fn(args, report)
    report.write(text, data)
    return data


def main(argv: list[str] | None = None) -> dict:
    return step_benchmark_main("loss_overhead", __doc__, run, argv, batch_size=16, num_negatives=3, repeats=9)


if __name__ == "__main__":
    main()
