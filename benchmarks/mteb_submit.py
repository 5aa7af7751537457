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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402

from negmine.encoders import EmbeddingCache
from negmine.evaluation.beir import evaluate_beir, resolve_encoder
from negmine.evaluation.mteb import evaluate_mteb, make_model_meta, scores_of
from negmine.evaluation.submission import export_submission

#### constants
DEFAULT_DATA = [Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / name for name in ("scifact",)]
AGREEMENT = 5e-5  # negmine eval and mteb must agree to 4 decimals
# nDCG@10 of sentence-transformers/all-MiniLM-L6-v2 on the MTEB leaderboard (published by others, cited, not measured)
PUBLISHED = {("minilm", "SciFact"): 0.6451, ("minilm", "ArguAna"): 0.5017}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm", help="preset, model folder or hub id")
    parser.add_argument("--data", action="append", type=Path, help="local BEIR folder (repeatable)")
    parser.add_argument("--name", help="org/name for a non-preset model")
    parser.add_argument("--revision")
    parser.add_argument("--training-dataset", action="append", help="MTEB task the model was trained on ('none')")
    parser.add_argument("--adapted-from")
    parser.add_argument("--out", type=Path, default=Path("runs/mteb-submit"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--report", default=None,
                        help="the report to write (default benchmarks/results/mteb_submit.md; '-': print only)")
    args = parser.parse_args(argv)
    report = Report("mteb_submit", "benchmarks/mteb_submit.py", argv, out=args.report)
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
    ours: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}
    encoded_before = cache.encoded
    for folder in folders:
        started = time.perf_counter()
        with report.phase(f"negmine eval {folder.name}"):
            result = evaluate_beir(encoder, folder, "test", unknown_qrels="keep", cache=cache,
                                   batch_size=args.batch_size, show_progress_bar=True)
        ours[folder.name] = {k: result.metrics[k] for k in ("ndcg@10", "mrr@10", "recall@100")}
        ours[folder.name]["num_queries"] = result.metrics.get("num_queries", len(result.per_query["ndcg@10"]))
        timings[folder.name] = time.perf_counter() - started
        result.save(args.out / "negmine-eval" / folder.name)
    encoded_by_eval = cache.encoded - encoded_before

    #### step 3: mteb's own evaluator on the same folders (served from the cache), results in mteb's layout
    started = time.perf_counter()
    with report.phase("mteb.evaluate"):
        model_result = evaluate_mteb(encoder, data=folders, model_meta=meta, output_folder=args.out / "mteb",
                                     cache=cache, batch_size=args.batch_size)
    mteb_seconds = time.perf_counter() - started
    encoded_by_mteb = cache.encoded - encoded_before - encoded_by_eval
    theirs = {task: {"ndcg@10": splits["test"]["ndcg_at_10"], "mrr@10": splits["test"].get("mrr_at_10"),
                     "recall@100": splits["test"].get("recall_at_100")}
              for task, splits in scores_of(model_result).items()}

    #### step 4: export for the results repository, validated by loading it back with mteb
    submission = export_submission(args.out / "mteb", args.out / "submission", model_name=meta.name,
                                   revision=meta.revision)

    #### step 5: report (benchmarks/results/mteb_submit.md + .json)
    rows = []
    for folder, task in zip(folders, theirs):
        mine, mteb_scores = ours[folder.name], theirs[task]
        rows.append({"dataset": folder.name, "task": task, "queries": mine["num_queries"],
                     "published_ndcg@10": PUBLISHED.get((args.model, task)), "negmine": mine, "mteb": mteb_scores,
                     "agree": abs(mine["ndcg@10"] - mteb_scores["ndcg@10"]) <= AGREEMENT,
                     "negmine_eval_seconds": timings[folder.name]})
    data = {"model": meta.name, "revision": meta.revision, "rows": rows, "mteb_seconds": mteb_seconds,
            "texts_encoded_by_negmine_eval": encoded_by_eval, "texts_encoded_by_mteb": encoded_by_mteb,
            "agreement_tolerance": AGREEMENT, "submission": str(submission.folder),
            "zero_shot": submission.zero_shot}
    report.write(render(data), data)
    return data


def _cell(value: float | None, digits: int = 5) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render(data: dict) -> str:
    """The Markdown of the report (every figure from ``data``)."""
    lines = [f"# {data['model']}: negmine eval vs MTEB (offline, local BEIR folders)", "",
             f"Revision {data['revision']}; texts encoded by `negmine eval` this run: "
             f"{data['texts_encoded_by_negmine_eval']:,}; by the MTEB run: {data['texts_encoded_by_mteb']:,} "
             "(it reads negmine's embedding cache).", "",
             "| dataset (MTEB task) | queries | published MTEB nDCG@10 | negmine eval nDCG@10 | "
             "mteb.evaluate nDCG@10 | "
             "agree (4 dp) | MRR@10 negmine / mteb | Recall@100 negmine / mteb | negmine eval s |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in data["rows"]:
        lines.append(f"| {r['dataset']} ({r['task']}) | {r['queries']:,} | {_cell(r['published_ndcg@10'], 4)} | "
                     f"{_cell(r['negmine']['ndcg@10'])} | {_cell(r['mteb']['ndcg@10'])} | {r['agree']} | "
                     f"{_cell(r['negmine']['mrr@10'])} / {_cell(r['mteb']['mrr@10'])} | "
                     f"{_cell(r['negmine']['recall@100'])} / {_cell(r['mteb']['recall@100'])} | "
                     f"{r['negmine_eval_seconds']:.0f} |")
    lines += ["", f"mteb.evaluate: {data['mteb_seconds']:.0f} s; submission folder: `{data['submission']}` "
                  f"(zero-shot: {data['zero_shot']}). Published values: the MTEB leaderboard (cited, not measured).",
              "", "ArguAna uses the identical-id rule (a retrieved document whose id is the query id is dropped) and "
                  "keeps qrels documents missing from the corpus as relevant-but-unretrievable."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
