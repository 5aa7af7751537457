"""Training-step time in float32 and in bf16 mixed precision (``negmine train --precision bf16``), and how far the
bf16 step's loss and gradient are from float32's.

#### What is measured
One training step = all-MiniLM-L6-v2 in train mode embedding every column of one pre-tokenized batch of real SciFact
texts, the loss (``ListwiseDistillation`` with its InfoNCE term, the SciFact table's ``gemma-listwise`` loss), the
backward pass and an AdamW step. bf16 runs the model's forward under ``torch.autocast("cpu", torch.bfloat16)`` as the
trainer does with ``bf16=True``; the loss does its math in float32 either way. Steps are interleaved (fp32 then bf16,
the order swapped every repeat) so machine load hits both alike; the speed-up is the median over repeats of (fp32
step / bf16 step in the same repeat), with its spread. Agreement: at the start weights, the loss value and the
cosine between the two full gradient vectors (bf16 against fp32) on the same batch.

bf16 can only be fast where the CPU multiplies bf16 in hardware: AMX tiles do it at many times fp32's rate, AVX-512
BF16's dot-product instructions alone gave no gain here (0.93x on a Xeon without AMX), and without either bf16 is
emulated. The report names the CPU's flags.

#### Run
    python benchmarks/train_precision.py          # batch 32 x 8 texts, 256 tokens; writes results/train_precision.md
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402
from loss_overhead import build_batch, quartiles, step_benchmark_main  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def step(model, loss, features, labels, optimizer, precision: str) -> float:
    """One timed training step (forward under the precision's autocast, backward, AdamW)."""
    start = time.perf_counter()
    with autocast(precision):
        value = loss([dict(f) for f in features], labels)
    value.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def loss_and_gradient(model, loss, features, labels, precision: str) -> tuple[float, torch.Tensor]:
    """The loss and the flattened gradient at the current weights (no update)."""
    model.zero_grad(set_to_none=True)
    with autocast(precision):
        value = loss([dict(f) for f in features], labels)
    value.backward()
    grad = torch.cat([p.grad.flatten().double() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return float(value.detach()), grad


def run(args: argparse.Namespace, report: Report) -> tuple[str, dict]:
    from sentence_transformers import SentenceTransformer

    from negmine.encoders.presets import bundled_minilm_path
    from negmine.losses import ListwiseDistillation
    from negmine.pipeline import hardware_info

    torch.manual_seed(args.seed)
    model = SentenceTransformer(str(args.model or bundled_minilm_path()), device="cpu")
    model.max_seq_length = args.max_seq_length
    model.train()
    columns, labels = build_batch(args.data, args.batch_size, args.num_negatives, args.seed)
    features = [model.preprocess(texts) for texts in columns]
    loss = ListwiseDistillation(model, temperature=0.05, teacher_temperature=0.05, infonce_weight=1.0)

    # agreement first, at the start weights (dropout off, so both passes see the same network)
    model.eval()
    with report.phase("agreement"):
        (loss32, grad32), (loss16, grad16) = (loss_and_gradient(model, loss, features, labels, p) for p in PRECISIONS)
    model.train()
    cosine = float(torch.nn.functional.cosine_similarity(grad32, grad16, dim=0))
    relative = float((grad16 - grad32).norm() / grad32.norm())

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)  # a tiny rate: the weights barely move between steps
    times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for repeat in range(args.warmup + args.repeats):
        order = PRECISIONS if repeat % 2 == 0 else PRECISIONS[::-1]
        with report.phase("warm-up" if repeat < args.warmup else "timed repeats"):
            for precision in order:
                seconds = step(model, loss, features, labels, optimizer, precision)
                if repeat >= args.warmup:
                    times[precision].append(seconds)
        print(f"repeat {repeat + 1}/{args.warmup + args.repeats} done", file=sys.stderr, flush=True)
    speedups = [a / b for a, b in zip(times["fp32"], times["bf16"])]
    flags = hardware_info().get("cpu_flags", [])
    bf16_hardware = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]  # the report names what is missing
    data = {"batch_size": args.batch_size, "texts_per_row": len(columns), "max_seq_length": args.max_seq_length,
            "repeats": args.repeats, "warmup": args.warmup, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "bf16_hardware": bf16_hardware,
            "step_seconds": {p: quartiles(times[p]) for p in PRECISIONS}, "speedup": quartiles(speedups),
            "raw_step_seconds": times, "loss": {"fp32": loss32, "bf16": loss16},
            "gradient_cosine": cosine, "gradient_relative_difference": relative}
    s32, s16, up = data["step_seconds"]["fp32"], data["step_seconds"]["bf16"], data["speedup"]
    lines = [
        "# Training step: float32 against bf16 mixed precision",
        "",
        f"- all-MiniLM-L6-v2, train mode, max_seq_length {args.max_seq_length}; batch {args.batch_size} rows x "
        f"{len(columns)} texts (query, positive, {args.num_negatives} negatives) of SciFact train texts; loss "
        "ListwiseDistillation + InfoNCE (temperatures 0.05, teacher-like scores); AdamW step included. "
        f"`torch.get_num_threads()` = {torch.get_num_threads()}, torch {torch.__version__}.",
        f"- bf16 in hardware on this CPU: {', '.join(bf16_hardware) or 'none (bf16 is emulated: expect it slower)'}.",
        f"- {args.repeats} interleaved repeats (+{args.warmup} warm-up), the order swapped every repeat.",
        "",
        "| precision | median step (s) | min – max (s) |",
        "| --- | ---: | :---: |",
        f"| fp32 | {s32['median']:.2f} | {s32['min']:.2f} – {s32['max']:.2f} |",
        f"| bf16 (autocast) | {s16['median']:.2f} | {s16['min']:.2f} – {s16['max']:.2f} |",
        "",
        f"**Speed-up of bf16: {up['median']:.2f}x** (median over repeats of fp32 step / bf16 step; min "
        f"{up['min']:.2f}, max {up['max']:.2f}).",
        "",
        f"Agreement at the start weights (same batch, dropout off): loss {loss32:.5f} in fp32, {loss16:.5f} in bf16; "
        f"the bf16 gradient's cosine to the fp32 gradient is {cosine:.4f} (relative difference {relative:.3f}). "
        "What that does to a trained model is the SciFact table's `gemma-listwise-bf16` row.",
    ]
    return "\n".join(lines), data


def main(argv: list[str] | None = None) -> dict:
    return step_benchmark_main("train_precision", __doc__, run, argv, batch_size=32, num_negatives=6, repeats=5,
                               negatives_help="8 texts per row, as a SciFact row's 2 positives + 5 negatives + the "
                                              "query")


if __name__ == "__main__":
    main()
