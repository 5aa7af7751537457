"""``negmine score``."""

from __future__ import annotations

from typing import Annotated

import typer

from negmine.cli._options import ConfigOpt, DryRunOpt, ModelPathOpt, OutOpt, build_or_show, print_table

SCORE_EXAMPLES = [
    "negmine score --mined runs/scifact-minilm/mined.jsonl --teacher embeddinggemma --max-seq-length 512 "
    "--data scifact --out runs/scifact-minilm-gemma",
    "negmine score --mined runs/x --teacher cross-encoder:BAAI/bge-reranker-v2-m3 --out runs/x-bge-reranker",
    "negmine score --mined runs/x --teacher embeddinggemma,mpnet:0.7,0.3 --guard teacher-above-positive --out runs/y",
]

TeacherOpt = Annotated[
    str | None,
    typer.Option("--teacher", help="Teacher: a preset/model folder/hub id (bi-encoder), cross-encoder:MODEL, "
                 "llm-yes:TARGET, scores:FILE (a teacher_scores.jsonl an earlier run wrote, looked up by id), or an "
                 "ensemble a,b[:w_a,w_b] of per-query z-scored scores."),
]
MaxSeqLengthOpt = Annotated[
    int | None, typer.Option("--max-seq-length", help="Token cap of the (bi-encoder) model; part of the cache key.")
]
GuardOpt = Annotated[
    str | None,
    typer.Option("--guard", help="teacher-above-positive: drop negatives the teacher scores above the query's "
                 "lowest positive (counted in stats.json)."),
]


def score(
    mined: Annotated[str | None, typer.Option("--mined", help="mined.jsonl (or the folder holding it).")] = None,
    teacher: TeacherOpt = None,
    out: OutOpt = None,
    config: ConfigOpt = None,
    model_path: ModelPathOpt = None,
    max_seq_length: MaxSeqLengthOpt = None,
    data: Annotated[str | None, typer.Option(
        "--data", "-d", help="The mined corpus (BEIR folder or name): a bi-encoder teacher encodes it whole, "
                             "reusing the cache entry of `negmine eval`/`mine`.")] = None,
    guard: GuardOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Encoding / cross-encoder batch size.")] = None,
    block_size: Annotated[int | None, typer.Option(help="Queries per cached block (pairwise teachers).")] = None,
    cache_dir: Annotated[str | None, typer.Option(help="Embedding cache folder.")] = None,
    no_cache: Annotated[bool | None, typer.Option("--no-cache", help="Do not use the embedding cache.")] = None,
    n_ctx: Annotated[int | None, typer.Option(help="llm-yes: context window of an in-process model.")] = None,
    n_threads: Annotated[int | None, typer.Option(help="llm-yes: CPU threads of a llama.cpp model.")] = None,
    max_passage_words: Annotated[int | None, typer.Option(help="llm-yes: cut passages to this many words.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")] = True,
    dry_run: DryRunOpt = False,
) -> None:
    """Re-score every (query, passage) of a mined file with a teacher; the record keeps the retriever's scores and
    gains the teacher's (positive_teacher_scores, negative_teacher_scores). Resumable: rerun the same command.

    Examples:

      negmine score --mined runs/scifact-minilm/mined.jsonl --teacher embeddinggemma --max-seq-length 512
      --data scifact --out runs/scifact-minilm-gemma

      negmine score --mined runs/x --teacher cross-encoder:BAAI/bge-reranker-v2-m3 --out runs/x-bge-reranker

      negmine score --mined runs/x --teacher embeddinggemma,mpnet:0.7,0.3 --guard teacher-above-positive --out runs/y
    """
    from negmine.scoring import ScoreConfig, score_mined

    overrides = dict(mined=mined, teacher=teacher, out=out, model_path=model_path, max_seq_length=max_seq_length,
                     data=data, guard=guard, batch_size=batch_size, block_size=block_size, cache_dir=cache_dir,
                     no_cache=no_cache, n_ctx=n_ctx, n_threads=n_threads,
                     max_passage_words=max_passage_words, show_progress_bar=progress)
    cfg = build_or_show(ScoreConfig, "score", config, overrides, dry_run)
    if cfg is None:
        return
    result = score_mined(cfg)
    print_table(f"negmine score → {result.out_dir}", [(k, str(v)) for k, v in result.stats.items()])
