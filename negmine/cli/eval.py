"""``negmine eval``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from negmine.cli._options import CORPUS_STORAGE_HELP, check_unknown_qrels

EVAL_EXAMPLES = [
    "negmine eval --model minilm --data scifact --split test",
    "negmine eval --model runs/scifact-minilm/model --data ../shared/data/beir/scifact --k 1,10,100 "
    "--baseline runs/eval/scifact-test-minilm/metrics.json",
    "negmine eval --model minilm --data ../shared/data/beir/arguana --unknown-qrels keep",
]


def _parse_k(values: list[str] | None) -> tuple[int, ...]:
    ks: list[int] = []
    for value in values or ["1,3,5,10,100"]:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise typer.BadParameter(f"cut-offs are positive integers, got {part!r}", param_hint="--k")
            ks.append(int(part))
    if not ks:
        raise typer.BadParameter("no cut-off given", param_hint="--k")
    return tuple(sorted(set(ks)))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/").split("/")[-1] or text)[:80] or "model"


def eval_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Preset (minilm, bge, ...), model folder or hub id.")],
    data: Annotated[str, typer.Option("--data", "-d", help="BEIR folder or dataset name under $NEGMINE_DATA.")],
    split: Annotated[str, typer.Option("--split", help="Qrels split (qrels/<split>.tsv).")] = "test",
    k: Annotated[list[str] | None, typer.Option("--k", help="Cut-offs, comma-separated or repeated "
                                                              "(default 1,3,5,10,100).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for metrics.json, run.trec and "
                                                                  "manifest.json (default runs/eval/"
                                                                  "<data>-<split>-<model>).")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Another metrics.json: print the "
                                                                     "difference with a paired test per "
                                                                     "metric.")] = None,
    test: Annotated[str, typer.Option("--test", help="Paired test: t-test, bootstrap or randomization.")] = "t-test",
    metric: Annotated[list[str] | None, typer.Option("--metric", help="Metrics to compare with --baseline "
                                                                      "(default ndcg@10, mrr@10, recall@10, "
                                                                      "recall@100).")] = None,
    keep_identical_ids: Annotated[bool, typer.Option(
        "--keep-identical-ids", help="Keep retrieved documents whose id equals the query id (default: drop them, "
                                     "as BEIR does).")] = False,
    unknown_qrels: Annotated[str, typer.Option("--unknown-qrels", help="Qrels naming unknown ids: error, keep "
                                                                       "(relevant but unretrievable: the official "
                                                                       "ArguAna scoring) or skip.")] = "error",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Encoding batch size.")] = 32,
    model_path: Annotated[str | None, typer.Option("--model-path", help="Local folder with a preset's "
                                                                        "weights.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the embedding cache.")] = False,
    max_seq_length: Annotated[int | None, typer.Option("--max-seq-length", help="Token cap of the model (default: "
                                                                                "the preset's/model's); part of the "
                                                                                "cache key.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap/randomization tests.")] = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")] = True,
    ray: Annotated[str | None, typer.Option("--ray", help="Encode and search on a Ray cluster: ADDRESS "
                                                          '(host:port) or auto (pip install "negmine[ray]").')] = None,
    corpus_storage: Annotated[str, typer.Option("--corpus-storage", help=CORPUS_STORAGE_HELP)] = "memory",
) -> None:
    """Evaluate a retriever on a BEIR split: nDCG@k, Recall@k, Precision@k, MRR@k and MAP (pytrec_eval).

    Writes metrics.json (means and per-query scores), run.trec and manifest.json, and prints a table. With
    --baseline, prints each metric's difference with a paired significance test over the queries.

    Examples:

        negmine eval --model minilm --data scifact --split test

        negmine eval --model runs/x/model --data ../shared/data/beir/scifact --baseline runs/eval/base/metrics.json

        negmine eval --model minilm --data ../shared/data/beir/arguana --unknown-qrels keep
    """
    from negmine.errors import ConfigError
    from negmine.evaluation.beir import evaluate_beir, load_metrics
    from negmine.evaluation.significance import METHODS, compare_runs, format_comparison
    from negmine.io import write_json, write_manifest

    ks = _parse_k(k)
    if test not in METHODS:
        raise ConfigError(f"--test {test!r} is not one of {', '.join(METHODS)}")
    check_unknown_qrels(unknown_qrels)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    base = load_metrics(baseline) if baseline is not None else None  # fail early on a bad baseline file

    result = evaluate_beir(model, data, split, k_values=ks, ignore_identical_ids=not keep_identical_ids,
                           unknown_qrels=unknown_qrels, batch_size=batch_size, cache=not no_cache,
                           model_path=model_path, max_seq_length=max_seq_length, show_progress_bar=progress,
                           ray_address=ray, corpus_storage=corpus_storage)
    capped = f"-len{max_seq_length}" if max_seq_length is not None else ""
    out_dir = out or Path("runs") / "eval" / f"{_slug(result.config['dataset'])}-{split}-{_slug(model)}{capped}"
    path = result.save(out_dir)
    config = {key: value for key, value in result.config.items() if key not in ("seconds", "cache_hits")}
    write_manifest(out_dir, "eval", {**config, "batch_size": batch_size, "max_seq_length": max_seq_length,
                                         "test": test}, seed=seed)

    typer.echo(f"{result.config['dataset']}[{split}]: {result.num_queries:,} queries, "
               f"{result.config['num_documents']:,} documents, model {model}")
    typer.echo(result.table())
    if base is not None:
        names = metric or [m for m in ("ndcg@10", "mrr@10", "recall@10", "recall@100") if m in result.per_query]
        comparison = compare_runs(base["per_query"], result.per_query, names, method=test, seed=seed)
        typer.echo(f"\nvs baseline {baseline} ({base.get('model', '?')}):")
        typer.echo(format_comparison(comparison))
        write_json(out_dir / "comparison.json", {"baseline": str(baseline), "method": test, "seed": seed,
                                                 "results": [r.to_dict() for r in comparison]})
    typer.echo(f"\nwrote {path}")
