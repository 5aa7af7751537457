"""What the training-dynamics options of issue 20 cost: step time against plain training, re-mining time per round.

#### What is measured (a short run on a tiny sample; not a quality result)
A seeded SciFact train sample (``--queries`` queries, ``--docs`` documents) is mined once with all-MiniLM-L6-v2
(the start model). Then each variant trains ``--steps`` steps (batch ``--batch-size``, 64 tokens) from the start
model, in this order, ``--repeats`` times (variants interleaved within a repeat, so machine load hits all alike):

* ``plain``: negmine's default (no-duplicates batches, hard negatives only);
* ``random-negatives``: ``--random-negatives`` random corpus negatives per row beside the hard ones (STAR);
* ``ngame``: NGAME batches (query clusters of ``--cluster-size``); its setup (the start model's query embeddings
  through the cache, the clustering) is timed apart;
* ``adore``: the query side trained, the document side frozen (ADORE).

Step time = the trainer's ``train_runtime`` / steps; the ratio is the median over repeats of (variant / plain in the
same repeat). Re-mining time per round: one :func:`negmine.dynamic.remine` with the trained student (corpus and
queries re-encoded, index, search, mine) and two with the ADORE model: the first round encodes the frozen document
side once (an entry of the start model at the training ``max_seq_length``), later rounds read it from the cache and
re-encode only the queries.

#### Run
    python benchmarks/training_dynamics_cost.py      # writes benchmarks/results/training_dynamics_cost.{md,json}
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import command_line, publish

from negmine.io import write_json

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("plain", "random-negatives", "ngame", "adore")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--model", default=None, help="start model folder (default: the bundled MiniLM)")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--random-negatives", type=int, default=2)
    parser.add_argument("--cluster-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "training_dynamics_cost.md"))
    args = parser.parse_args(argv)

    from negmine.data import load_data
    from negmine.dynamic import remine
    from negmine.encoders.presets import bundled_minilm_path
    from negmine.evaluation import subsample
    from negmine.mining.api import run_mining
    from negmine.mining.config import MineConfig
    from negmine.training import TrainConfig, adore_model, build_dataset, build_trainer, load_model

    model_path = args.model or str(bundled_minilm_path())
    load_start = os.getloadavg()[0]
    data = subsample(load_data(args.data, "train"), args.queries, args.docs, seed=0)
    mine_cfg = MineConfig(retriever=model_path, data="scifact-sample", out="", num_negatives=3, range_max=20,
                          output_scores=True, show_progress_bar=False, batch_size=64)
    t = time.perf_counter()
    records = run_mining(mine_cfg, data=data).records
    first_mining = time.perf_counter() - t

    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    setup: dict[str, list[float]] = {v: [] for v in VARIANTS}
    trained: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for variant in VARIANTS:
                cfg = TrainConfig(model=model_path, out=f"{tmp}/{variant}-{repeat}", max_steps=args.steps,
                                  batch_size=args.batch_size, max_seq_length=64, warmup_ratio=0.0, save_steps=0,
                                  show_progress_bar=False, logging_steps=args.steps, num_negatives=2, seed=repeat,
                                  random_negatives=args.random_negatives if variant == "random-negatives" else 0,
                                  batch_sampler="ngame" if variant == "ngame" else "no-duplicates",
                                  ngame_cluster_size=args.cluster_size, adore=variant == "adore")
                start = load_model(model_path, 64)
                model = adore_model(start) if variant == "adore" else start
                t = time.perf_counter()
                trainer = build_trainer(cfg, model=model, dataset=build_dataset(cfg, records, corpus=data))
                setup[variant].append(time.perf_counter() - t)
                state = trainer.train()
                seconds[variant].append(float(state.metrics["train_runtime"]) / max(1, int(state.global_step)))
                trained[variant] = (trainer.model, start)
        remine_seconds = {}
        for variant, label in (("plain", "student"), ("adore", "adore-first"), ("adore", "adore-later")):
            student, start = trained[variant]
            _, timings = remine(student, start, mine_cfg, data)
            remine_seconds[label] = timings
    load_end = os.getloadavg()[0]

    ratio = {v: statistics.median(s / p for s, p in zip(seconds[v], seconds["plain"])) for v in VARIANTS}
    result = {
        "command": command_line("benchmarks/training_dynamics_cost.py", argv),
        "commit": _commit(),
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, no GPU",
        "load_average": [round(load_start, 1), round(load_end, 1)],
        "sample": {"queries": len(data.split_query_ids), "docs": len(data.corpus)},
        "config": vars(args),
        "first_mining_seconds": first_mining,
        "seconds_per_step": {v: statistics.median(s) for v, s in seconds.items()},
        "setup_seconds": {v: statistics.median(s) for v, s in setup.items()},
        "step_time_ratio": ratio,
        "remine_seconds": remine_seconds,
    }
    lines = [
        "# Training dynamics: what the options cost (tiny sample, CPU)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Commit {result['commit']}; {result['hardware']}; load average {load_start:.1f} at start, "
        f"{load_end:.1f} at the end (a shared machine: ratios are noisy, absolute times are not representative).",
        f"Sample: {result['sample']['queries']} SciFact train queries, {result['sample']['docs']} documents; "
        f"all-MiniLM-L6-v2; {args.steps} steps of batch {args.batch_size}, 64 tokens; {args.repeats} repeat(s). "
        "**A cost measurement on a tiny sample, not a quality result** (each option's SciFact quality: `scifact.md`).",
        "",
        "| variant | s / step | ratio to plain | setup s (trainer build) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for v in VARIANTS:
        per_step, built = result["seconds_per_step"][v], result["setup_seconds"][v]
        lines.append(f"| {v} | {per_step:.2f} | {ratio[v]:.2f} | {built:.1f} |")
    lines += ["", "Re-mining one round (seconds; `encode_corpus+index` includes the corpus encoding):", "",
              "| model | total | parts |", "| --- | ---: | --- |"]
    for v, timings in remine_seconds.items():
        parts = ", ".join(f"{k} {s:.1f}" for k, s in timings.items() if k != "total")
        names = {"student": "student (ANCE-lite), every round", "adore-first": "ADORE, first round (documents once)",
                 "adore-later": "ADORE, later rounds (queries only)"}
        lines.append(f"| {names[v]} | "
                     f"{timings['total']:.1f} | {parts} |")
    lines += ["", f"First mining with the start model (encodes the corpus, or reads it from the cache): "
              f"{first_mining:.1f} s.", ""]
    text = "\n".join(lines)
    if args.out != "-":
        write_json(Path(args.out).with_suffix(".json"), result)
    publish(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
