"""MTEB submission script: evaluate a model on local BEIR folders with negmine eval *and* mteb's own evaluator,
check the two agree, and export the results folder for a pull request to embeddings-benchmark/results.

Runs offline: each local folder that is an MTEB task (scifact -> SciFact, arguana -> ArguAna) is run as that task
on the local data (checked to be MTEB's data), and every corpus is encoded once (negmine's embedding cache).

    python benchmarks/mteb_submit.py --model minilm --data ../shared/data/beir/scifact \
        --data ../shared/data/beir/arguana
    python benchmarks/mteb_submit.py --model runs/x/model --name myorg/minilm-scifact-negmine \
        --training-dataset SciFact --adapted-from sentence-transformers/all-MiniLM-L6-v2 \
        --data ../shared/data/beir/scifact
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path

from negmine.encoders import EmbeddingCache
from negmine.evaluation.beir import evaluate_beir, resolve_encoder
from negmine.evaluation.mteb import evaluate_mteb, make_model_meta, scores_of
from negmine.evaluation.submission import export_submission

#### constants
DEFAULT_DATA = [Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / name for name in ("scifact",)]
AGREEMENT = 5e-5  # negmine eval and mteb must agree to 4 decimals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm", help="preset, model folder or hub id")
    parser.add_argument("--data", action="append", type=Path, help="local BEIR folder (repeatable)")
    parser.add_argument("--name", help="org/name for a non-preset model")
    parser.add_argument("--revision")
    parser.add_argument("--training-dataset", action="append", help="MTEB task the model was trained on ('none')")
    parser.add_argument("--adapted-from")
    parser.add_argument("--out", type=Path, default=Path("runs/mteb-submit"))
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folders = args.data or DEFAULT_DATA

    #### step 1: one encoder, one explicit ModelMeta
    encoder = resolve_encoder(args.model)
    declared = None
    if args.training_dataset is not None:
        declared = [] if [t.lower() for t in args.training_dataset] == ["none"] else args.training_dataset
    meta = make_model_meta(encoder, name=args.name, revision=args.revision, training_datasets=declared,
                           adapted_from=args.adapted_from)
    cache = EmbeddingCache()

    #### step 2: negmine eval on each folder (encodes each corpus once, into the cache)
    ours: dict[str, float] = {}
    timings: dict[str, float] = {}
    for folder in folders:
        started = time.perf_counter()
        result = evaluate_beir(encoder, folder, "test", unknown_qrels="keep", cache=cache,
                               batch_size=args.batch_size, show_progress_bar=True)
        ours[folder.name] = result.metrics["ndcg@10"]
        timings[folder.name] = time.perf_counter() - started
        result.save(args.out / "negmine-eval" / folder.name)

    #### step 3: mteb's own evaluator on the same folders (served from the cache), results in mteb's layout
    started = time.perf_counter()
    model_result = evaluate_mteb(encoder, data=folders, model_meta=meta, output_folder=args.out / "mteb",
                                 cache=cache, batch_size=args.batch_size)
    mteb_seconds = time.perf_counter() - started
    theirs = {task: splits["test"]["ndcg_at_10"] for task, splits in scores_of(model_result).items()}

    #### step 4: export for the results repository, validated by loading it back with mteb
    submission = export_submission(args.out / "mteb", args.out / "submission", model_name=meta.name,
                                   revision=meta.revision)

    #### step 5: report (Markdown)
    print(f"\n{meta.name} @ {meta.revision} on {platform.processor() or platform.machine()}, "
          f"{cache.encoded:,} texts encoded this run\n")
    print("| dataset | negmine eval nDCG@10 | mteb nDCG@10 | agree (4 dp) | negmine eval s |")
    print("|---|---|---|---|---|")
    tasks = dict(zip([f.name for f in folders], theirs))
    for folder_name, task in tasks.items():
        agree = abs(ours[folder_name] - theirs[task]) <= AGREEMENT
        print(f"| {folder_name} ({task}) | {ours[folder_name]:.4f} | {theirs[task]:.4f} | {agree} | "
              f"{timings[folder_name]:.0f} |")
    print(f"\nmteb.evaluate: {mteb_seconds:.0f} s; submission: {submission.folder} "
          f"(zero-shot: {submission.zero_shot})")


if __name__ == "__main__":
    main()
