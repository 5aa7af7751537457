"""`negmine train` killed with SIGKILL between checkpoints, then resumed with ``--resume-from-checkpoint last``:
how far are its final metrics and weights from an uninterrupted run's, next to the run-to-run spread of two
uninterrupted runs?

#### What is measured
A tiny BERT sentence embedder (2 layers, hidden 64, all-MiniLM-L6-v2's tokenizer, seeded random init) is trained
with InfoNCE on a small mined file of real SciFact train texts (``--max-steps 8 --save-steps 2``), then evaluated
(nDCG@10 and friends on a seeded SciFact test subsample, the trainer's in-training evaluator). Runs, each a real
``negmine train`` process:

- ``uninterrupted`` x ``--repeats`` (the run-to-run spread),
- ``killed at step K`` for each ``--kill-steps`` K: the process SIGKILLs itself at the end of step K (between the
  checkpoints at 4 and 6 for K = 5), then the same command reruns with ``--resume-from-checkpoint last``.

Reported: the largest absolute difference of each final eval metric, and of any final weight, against the first
uninterrupted run. The test suite (tests/test_training_resume.py) asserts the resumed metrics stay within
``TOLERANCE`` of an uninterrupted run; this script is where that tolerance comes from.

#### Run
    python benchmarks/train_resume.py            # writes benchmarks/results/train_resume.md and .json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _report import command_line, publish

from negmine.io import write_json

#### constants
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "beir" / "scifact"
TOLERANCE = 1e-6  # asserted by tests/test_training_resume.py; >= every difference this script has measured
STEPS, SAVE_STEPS = 8, 2

# the child: `negmine train ...` that SIGKILLs itself at the end of step $NEGMINE_KILL_AT_STEP (if set)
CHILD = r'''
import os, signal, sys
import negmine.training as training

kill_at = int(os.environ.get("NEGMINE_KILL_AT_STEP", "0"))
if kill_at:
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    build = training.build_trainer

    def build_and_kill(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.add_callback(Kill())
        return trainer

    training.build_trainer = build_and_kill
from negmine.cli import main
main()
'''


def tiny_model(folder: Path, tokenizer_from: Path, seed: int = 0) -> Path:
    """A seeded, randomly initialised 2-layer BERT sentence embedder with MiniLM's tokenizer, saved to ``folder``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    if (folder / "modules.json").is_file():
        return folder
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_from))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=128)
    raw = folder.parent / f"{folder.name}-hf"
    BertModel(config).save_pretrained(str(raw))
    tokenizer.save_pretrained(str(raw))
    transformer = Transformer(str(raw), max_seq_length=32)
    SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")]).save(
        str(folder))
    return folder


def mined_file(data_dir: Path, path: Path, n_queries: int = 24, n_negatives: int = 3, seed: int = 0) -> Path:
    """A small ``mined.jsonl`` of real SciFact train texts: each query's positive and seeded random negatives."""
    from negmine.data import load_data

    data = load_data(data_dir, "train")
    rng = random.Random(seed)
    doc_ids = list(data.corpus)
    lines = []
    for qid in data.split_query_ids[:n_queries]:
        positives = data.positives(qid)[:1]
        negatives = rng.sample([d for d in doc_ids if d not in positives], n_negatives)
        short = {d: " ".join(data.doc_text(d).split()[:40]) for d in positives + negatives}
        lines.append(json.dumps({"query_id": qid, "query": data.queries[qid], "positive_ids": positives,
                                 "positives": [short[d] for d in positives], "positive_scores": [0.8],
                                 "negative_ids": negatives, "negatives": [short[d] for d in negatives],
                                 "negative_scores": [0.5, 0.4, 0.3][:n_negatives]}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_args(mined: Path, model: Path, out: Path, data_dir: Path) -> list[str]:
    return ["train", "--data", str(mined), "--model", str(model), "--loss", "infonce", "--out", str(out),
            "--batch-size", "4", "--max-steps", str(STEPS), "--save-steps", str(SAVE_STEPS), "--lr", "1e-3",
            "--max-seq-length", "32", "--seed", "0", "--num-negatives", "3", "--eval-data", str(data_dir),
            "--eval-split", "test", "--eval-max-queries", "30", "--eval-max-corpus", "300",
            "--eval-steps", "1000"]  # evaluate once, at the end


def run(args: list[str], kill_at: int = 0, timeout: float = 600, in_process: bool = False
        ) -> subprocess.CompletedProcess:
    """``negmine ARGS`` in a child process (SIGKILLed at the end of step ``kill_at`` if set), or, with
    ``in_process``, in this one (no start-up cost: the test suite has torch imported already)."""
    if in_process:
        from unittest import mock

        from negmine.cli import main

        code = 0
        with mock.patch.object(sys, "argv", ["negmine", *args]):
            try:
                main()
            except SystemExit as stop:
                code = int(stop.code or 0)
        return subprocess.CompletedProcess(args, code, "", "")
    env = {**os.environ, "NEGMINE_KILL_AT_STEP": str(kill_at), "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def killed_then_resumed(args: list[str], out: Path, kill_at: int, in_process: bool = False) -> dict[str, Any]:
    """Kill a run at the end of step ``kill_at`` (always a child process), check it died between checkpoints, then
    resume with ``--resume-from-checkpoint last`` (in this process with ``in_process``)."""
    killed = run(args, kill_at=kill_at)
    if killed.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the run was not killed (rc={killed.returncode}): {killed.stderr[-2000:]}")
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    if (out / "final").exists() or not checkpoints or max(checkpoints) >= kill_at + 1:
        raise RuntimeError(f"killed at step {kill_at} but found checkpoints {checkpoints}")
    resumed = run([*args, "--resume-from-checkpoint", "last"], in_process=in_process)
    if resumed.returncode != 0:
        raise RuntimeError(f"the resumed run failed: {resumed.stderr[-3000:]}")
    return {"kill_at": kill_at, "checkpoints_at_kill": checkpoints}


def final_state(out: Path) -> tuple[dict[str, float], Any]:
    from safetensors.numpy import load_file

    metrics = json.loads((out / "metrics.json").read_text())["eval"]
    weights = {}
    for file in sorted((out / "final").rglob("*.safetensors")):
        weights.update({f"{file.parent.name}/{k}": v for k, v in load_file(str(file)).items()})
    return metrics, weights


def differences(a: Path, b: Path) -> dict[str, float]:
    import numpy as np

    metrics_a, weights_a = final_state(a)
    metrics_b, weights_b = final_state(b)
    if metrics_a.keys() != metrics_b.keys() or weights_a.keys() != weights_b.keys():
        raise RuntimeError(f"{a} and {b} hold different metrics or weights")
    metric = max(abs(metrics_a[k] - metrics_b[k]) for k in metrics_a)
    weight = max(float(np.max(np.abs(weights_a[k].astype(np.float64) - weights_b[k]))) for k in weights_a)
    return {"max_abs_metric_difference": metric, "max_abs_weight_difference": weight,
            "ndcg@10": metrics_b.get(next((k for k in metrics_b if k.endswith("ndcg@10")), ""), float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=2, help="Uninterrupted runs (run-to-run spread).")
    parser.add_argument("--kill-steps", type=int, nargs="+", default=[3, 5, 7])
    parser.add_argument("--in-process", action="store_true", help="Run the first uninterrupted run and the resumed "
                        "runs in this process, as the test does (the killed runs and the other repeats are children).")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "train_resume")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train_resume.md")
    args = parser.parse_args()
    from negmine.encoders.presets import bundled_minilm_path

    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    model = tiny_model(args.work / "tiny-bert", bundled_minilm_path())
    mined = mined_file(args.data, args.work / "mined.jsonl")
    rows = []
    runs = []
    for i in range(args.repeats):
        out = args.work / f"uninterrupted-{i}"
        done = run(train_args(mined, model, out, args.data), in_process=not i and args.in_process)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        runs.append(out)
        if i:
            rows.append({"run": f"uninterrupted #{i + 1}", **differences(runs[0], out)})
    for kill_at in args.kill_steps:
        out = args.work / f"killed-{kill_at}"
        info = killed_then_resumed(train_args(mined, model, out, args.data), out, kill_at, args.in_process)
        rows.append({"run": f"killed at step {kill_at} (checkpoints {info['checkpoints_at_kill']}), resumed",
                     **differences(runs[0], out)})
    worst = max(max(r["max_abs_metric_difference"] for r in rows), 0.0)
    import torch

    result = {"command": command_line("benchmarks/train_resume.py"), "rows": rows, "tolerance": TOLERANCE,
              "worst_metric_difference": worst, "within_tolerance": worst <= TOLERANCE,
              "steps": STEPS, "save_steps": SAVE_STEPS, "load_average_start": load_start,
              "load_average_end": os.getloadavg()[0], "seconds": round(time.perf_counter() - started, 1),
              "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                          f"{'CUDA' if torch.cuda.is_available() else 'no GPU'}; Python {platform.python_version()}, "
                          f"torch {torch.__version__}",
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       cwd=REPO).stdout.strip()}
    lines = [
        "# Train resume: SIGKILL between checkpoints, then `--resume-from-checkpoint last`", "",
        f"Command: `{result['command']}`", "",
        f"- Commit {result['commit']}; {result['hardware']}; load average {load_start:.1f} at start, "
        f"{result['load_average_end']:.1f} at end; {result['seconds']} s in all.",
        f"- Tiny BERT (2 layers, hidden 64, seeded), InfoNCE, batch 4, {STEPS} steps, a checkpoint every "
        f"{SAVE_STEPS}; eval = SciFact test subsample (30 queries, 300 documents). Differences are against the first "
        "uninterrupted run.", "",
        "| run | max abs eval-metric difference | max abs weight difference | nDCG@10 |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {r['run']} | {r['max_abs_metric_difference']:.3g} | {r['max_abs_weight_difference']:.3g} | "
              f"{r['ndcg@10']:.4f} |" for r in rows]
    lines += ["", f"Tolerance asserted by tests/test_training_resume.py: {TOLERANCE:g} "
                  f"({'holds' if result['within_tolerance'] else 'EXCEEDED'}: worst measured {worst:.3g})."]
    publish("\n".join(lines) + "\n", args.out)
    write_json(args.out.with_suffix(".json"), result)


if __name__ == "__main__":
    main()
