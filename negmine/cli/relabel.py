"""``negmine relabel``: filter false negatives out of a mined file with an LLM, cross-encoder or cascade judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

RELABEL_EXAMPLES = [
    "negmine relabel --mined runs/x/mined.jsonl --judge llm:http://127.0.0.1:8000/v1@qwen --out runs/x/relabel",
    "negmine relabel --mined runs/x/mined.jsonl --judge llm:models/qwen2.5-1.5b-instruct-q4_k_m.gguf --limit 100 "
    "--out runs/x/relabel",
    "negmine relabel --mined runs/x/mined.jsonl --judge llm:http://127.0.0.1:8000/v1@qwen "
    "--cheap-judge cross-encoder:models/reranker --clear-below 0.05 --out runs/x/relabel",
    "negmine relabel --mined runs/x/mined.jsonl --judge llm-yes:models/Qwen2.5-1.5B-Instruct --mode filter "
    "--out runs/x/relabel",
    "negmine relabel --mined runs/x/mined.jsonl --judge embedding:mpnet@0.6 --mode filter --out runs/x/relabel",
]


def relabel(
    mined: Annotated[Path, typer.Option(help="mined.jsonl written by `negmine mine`.")],
    judge: Annotated[str, typer.Option(help="llm:URL@MODEL | llm:FILE.gguf | llm:HF_FOLDER | llm-yes:... | "
                                            "cross-encoder:PATH | embedding:MODEL[@THRESHOLD]")],
    out: Annotated[Path, typer.Option(help="Output folder: mined.jsonl, judgments.jsonl, summary.json, "
                                           "manifest.json, cache.jsonl.")],
    mode: Annotated[str, typer.Option(help="relabel (R), filter (F) or both (R+F).")] = "both",
    on_unsure: Annotated[str, typer.Option(help="drop or keep negatives whose decision is unsure.")] = "drop",
    cheap_judge: Annotated[str | None, typer.Option(help="Cascade: a cheap first judge (embedding:MODEL, "
                                                             "cross-encoder:PATH or llm-yes:...).")] = None,
    clear_below: Annotated[float, typer.Option(help="Cascade: cheap score under which a negative is cleared "
                                                    "without the main judge.")] = 0.1,
    cache: Annotated[Path | None, typer.Option(help="Judgment cache (JSONL); default OUT/cache.jsonl. "
                                                       "A rerun with the same cache resumes.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N queries.")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight (server judges).")] = 4,
    timeout: Annotated[float, typer.Option(help="Seconds per request (server judges).")] = 120.0,
    max_retries: Annotated[int, typer.Option(help="Retries on timeouts and 5xx (server judges).")] = 4,
    window: Annotated[int, typer.Option(help="Stage 2: passages per listwise prompt.")] = 20,
    step: Annotated[int, typer.Option(help="Stage 2: sliding-window step.")] = 10,
    snippet_max_tokens: Annotated[int, typer.Option(help="Stage 1: max tokens of an answer snippet.")] = 96,
    max_passage_words: Annotated[int, typer.Option(help="Passages are cut to this many words in prompts "
                                                        "(0: never).")] = 300,
    n_ctx: Annotated[int, typer.Option(help="Context length (in-process LLMs).")] = 4096,
    threads: Annotated[int | None, typer.Option(help="CPU threads of an in-process llama.cpp judge (default: "
                                                     "llama.cpp's).")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size (transformers LLM, cross-encoder).")] = 8,
    threshold: Annotated[float, typer.Option(help="Pointwise judges: score counted as 'has an answer' (P(yes), "
                                                   "cross-encoder probability, embedding cosine; "
                                                   "embedding:MODEL@T overrides it).")] = 0.5,
    chunk_size: Annotated[int, typer.Option(help="Queries judged together.")] = 16,
    device: Annotated[str | None, typer.Option(help="cpu, cuda ... (in-process judges).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Filter false negatives: ARHN-style answer snippets + listwise ranking; extra positives, removed negatives."""
    from negmine.relabel.api import relabel_file
    from negmine.relabel.factory import JudgeOptions, load_judge

    options = JudgeOptions(concurrency=concurrency, timeout=timeout, max_retries=max_retries, window=window,
                           step=step, snippet_max_tokens=snippet_max_tokens,
                           max_passage_words=max_passage_words or None, n_ctx=n_ctx, n_threads=threads,
                           batch_size=batch_size, threshold=threshold, device=device)
    cache_path = cache if cache is not None else out / "cache.jsonl"
    built = load_judge(judge, cheap=cheap_judge, clear_below=clear_below, cache=str(cache_path), options=options)
    summary = relabel_file(mined, built, out, mode=mode, on_unsure=on_unsure, limit=limit, chunk_size=chunk_size,
                           show_progress_bar=progress,
                           config={"judge_spec": judge, "cheap_judge_spec": cheap_judge, "clear_below": clear_below})
    keys = ("queries", "negatives_in", "relabeled", "filtered", "unsure", "relabeled_per_10_negatives",
            "filtered_per_10_negatives", "unsure_rate", "prompt_tokens", "completion_tokens", "wall_seconds",
            "pairs_per_second")
    typer.echo(json.dumps({k: summary.get(k) for k in keys}, indent=2))
    for warning in summary.get("warnings", []):
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {out / 'mined.jsonl'} and {out / 'judgments.jsonl'}")


relabel.__doc__ = (relabel.__doc__ or "") + "\n\nExamples:\n\n" + "\n\n".join(f"  {e}" for e in RELABEL_EXAMPLES)
