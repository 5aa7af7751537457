"""``negmine pseudo``."""

from __future__ import annotations

from typing import Annotated

import typer

from negmine.cli._options import ConfigOpt, DataOpt, DryRunOpt, OutOpt, SeedOpt, build_or_show, print_table


def pseudo(
    data: DataOpt = None,
    out: OutOpt = None,
    method: Annotated[str | None, typer.Option(help="sentence (a sentence of the document, ICT) or llm (a chat "
                                                    "model writes the query, GPL's doc2query step).")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Documents to make queries from, drawn uniformly with the "
                                                      "seed (default: every document).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="llm: URL@MODEL (OpenAI-compatible server), a .gguf "
                                                              "file or a model folder.")] = None,
    split: Annotated[str | None, typer.Option(help="Qrels split of the pseudo queries (default pseudo).")] = None,
    merge: Annotated[str | None, typer.Option(help="Also write the source split SPLIT merged with the pseudo "
                                                   "queries, as SPLIT+pseudo (the split to mine and train on)."
                                              )] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    min_words: Annotated[int | None, typer.Option(help="sentence: shortest sentence drawn.")] = None,
    max_words: Annotated[int | None, typer.Option(help="sentence: longest sentence drawn.")] = None,
    max_passage_words: Annotated[int | None, typer.Option(help="llm: cut passages to this many words.")] = None,
    n_ctx: Annotated[int | None, typer.Option(help="llm: context window of an in-process model.")] = None,
    n_threads: Annotated[int | None, typer.Option(help="llm: CPU threads of a llama.cpp model.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="llm: concurrent requests per server.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")] = True,
    dry_run: DryRunOpt = False,
) -> None:
    """Make in-domain training queries from a corpus (one per drawn document, the document its positive) and write
    a BEIR folder over the same corpus to mine, score and train on. Resumable: rerun the same command.

    Examples:

      negmine pseudo --data scifact --method sentence --n 1000 --merge train --out runs/scifact-pseudo

      negmine pseudo --data scifact --method llm --model http://127.0.0.1:8000/v1@qwen --out runs/scifact-gpl

      negmine mine --data runs/scifact-pseudo --split train+pseudo --retriever minilm --out runs/mined
    """
    from negmine.pseudo import PseudoConfig, make_pseudo_queries

    overrides = dict(data=data, out=out, method=method, n=n, model=model, split=split, merge=merge, seed=seed,
                     min_words=min_words, max_words=max_words, max_passage_words=max_passage_words, n_ctx=n_ctx,
                     n_threads=n_threads, concurrency=concurrency, show_progress_bar=progress)
    cfg = build_or_show(PseudoConfig, "pseudo", config, overrides, dry_run)
    if cfg is None:
        return
    result = make_pseudo_queries(cfg)
    print_table(f"negmine pseudo → {result.out_dir}", [(k, str(v)) for k, v in result.stats.items()])
