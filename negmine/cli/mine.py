"""``negmine mine``."""

from __future__ import annotations

from typing import Annotated

import typer

from negmine.cli._options import (
    CORPUS_STORAGE_HELP,
    ConfigOpt,
    DataOpt,
    DryRunOpt,
    ModelPathOpt,
    OutOpt,
    RetrieverOpt,
    SeedOpt,
    SplitOpt,
    build_or_show,
    parse_range,
    print_table,
)
from negmine.cli.score import GuardOpt, TeacherOpt

MINE_EXAMPLES = [
    "negmine mine --retriever minilm --data scifact --split train --out runs/scifact-minilm",
    "negmine mine --retriever bge --data ./beir/nq --strategy perc-pos --percentage 0.95 --range 0:50 "
    "--num-negatives 7 --sampling top --seed 0 --format n-tuple --out runs/nq-bge",
    "negmine mine --config training/scifact-minilm.toml --sampling softmax --temperature 0.05",
    "negmine mine --retriever hybrid:bm25+minilm --strategy range --data trec-dl19 --split sparse "
    "--out runs/dl19-hybrid",
]


def mine(
    retriever: RetrieverOpt = None,
    data: DataOpt = None,
    split: SplitOpt = None,
    out: OutOpt = None,
    config: ConfigOpt = None,
    model_path: ModelPathOpt = None,
    strategy: Annotated[
        str | None, typer.Option(help="Filters, ANDed: range, abs, margin-pos, perc-pos (comma-separated).")
    ] = None,
    range_: Annotated[str | None, typer.Option("--range", help="Rank range MIN:MAX (e.g. 0:50).")] = None,
    margin_reference: Annotated[
        str | None,
        typer.Option(
            help="The positive p of margin-pos/perc-pos: each (a row per (query, positive), its negatives "
            "measured against that positive; default), lowest or highest positive of the query."
        ),
    ] = None,
    positive_grade: Annotated[
        int | None, typer.Option(help="Graded qrels: score >= this is a positive (default 1).")
    ] = None,
    exclude_grade: Annotated[
        int | None,
        typer.Option(help="Graded qrels: exclude-grade <= score < positive-grade is never a positive nor a negative."),
    ] = None,
    percentage: Annotated[float | None, typer.Option(help="perc-pos: keep s(q,n) < percentage * s(q,p).")] = None,
    margin: Annotated[float | None, typer.Option(help="margin-pos: keep s(q,n) < s(q,p) - margin.")] = None,
    max_score: Annotated[float | None, typer.Option(help="abs: keep s(q,n) < max-score.")] = None,
    min_score: Annotated[float | None, typer.Option(help="abs: keep s(q,n) >= min-score.")] = None,
    num_negatives: Annotated[int | None, typer.Option(help="Negatives per query.")] = None,
    sampling: Annotated[str | None, typer.Option(help="top, random or softmax.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Softmax sampling temperature.")] = None,
    seed: SeedOpt = None,
    format_: Annotated[
        str | None, typer.Option("--format", help="n-tuple, triplet, labeled-pair, labeled-list, flag.")
    ] = None,
    output_scores: Annotated[
        bool | None, typer.Option("--output-scores/--no-output-scores", help="Add the teacher scores column.")
    ] = None,
    too_few: Annotated[str | None, typer.Option(help="Queries with too few negatives: drop, keep or pad.")] = None,
    near_duplicate: Annotated[
        float | None, typer.Option(help="Exclude candidates with cosine to a positive above this.")
    ] = None,
    block_candidates: Annotated[
        int | None,
        typer.Option(
            help="Most candidates (queries x search depth) held at once: bounds peak memory (default 1,000,000)."
        ),
    ] = None,
    cross_encoder: Annotated[str | None, typer.Option(help="Rescore candidates with this CrossEncoder.")] = None,
    index: Annotated[
        str | None, typer.Option(help="Search backend: faiss, exact (numpy) or torch (exact, on CUDA in fp16).")
    ] = None,
    factory: Annotated[str | None, typer.Option(help="FAISS factory string (default Flat = exact).")] = None,
    index_dir: Annotated[
        str | None,
        typer.Option(
            help="A persisted index folder (negmine index build) to search instead of encoding and "
            "indexing the corpus."
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option("--ray", help="Encode and search on a Ray cluster: ADDRESS (host:port) or auto "
                     '(pip install "negmine[ray]"). Same cache and same output bytes as a local run.'),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(help="Encoder precision: fp32, fp16, bf16 (CUDA), bf16-autocast, int8, int8-mixed (CPU), "
                     "or auto (bf16-autocast on CPUs with AVX-512 BF16/AMX, fp16 on CUDA, else fp32; checked)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Encoding batch size.")] = None,
    max_seq_length: Annotated[
        int | None, typer.Option("--max-seq-length", help="Token cap of the retriever; part of the cache key.")
    ] = None,
    teacher: TeacherOpt = None,
    teacher_max_seq_length: Annotated[
        int | None, typer.Option("--teacher-max-seq-length", help="Token cap of a bi-encoder --teacher.")
    ] = None,
    guard: GuardOpt = None,
    cache_dir: Annotated[
        str | None, typer.Option(help="Embedding cache folder (default $NEGMINE_CACHE or ~/.cache/negmine).")
    ] = None,
    no_cache: Annotated[
        bool | None, typer.Option("--no-cache", help="Do not read or write the embedding cache.")
    ] = None,
    on_invalid: Annotated[str | None, typer.Option(help="Bad input rows: error (default) or skip (counted).")] = None,
    unknown_qrels: Annotated[str | None, typer.Option(help="Qrels naming unknown ids: error, skip or keep.")] = None,
    corpus_storage: Annotated[str | None, typer.Option("--corpus-storage", help=CORPUS_STORAGE_HELP)] = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Mine hard negatives for the queries of a split and write mined.jsonl + a training file.

    Examples:

      negmine mine --retriever minilm --data scifact --split train --out runs/scifact-minilm

      negmine mine --retriever bge --data ./beir/nq --strategy perc-pos --percentage 0.95 --range 0:50
      --num-negatives 7 --sampling top --seed 0 --format n-tuple --out runs/nq-bge

    With --teacher SPEC the mined file is then scored by that teacher into OUT/scored (as `negmine score`).
    """
    from negmine.mining import MineConfig, run_mining

    range_min, range_max = parse_range(range_)
    overrides = dict(
        retriever=retriever,
        data=data,
        split=split,
        out=out,
        model_path=model_path,
        strategy=strategy,
        margin_reference=margin_reference,
        positive_grade=positive_grade,
        exclude_grade=exclude_grade,
        block_candidates=block_candidates,
        range_min=range_min,
        range_max=range_max,
        percentage=percentage,
        margin=margin,
        max_score=max_score,
        min_score=min_score,
        num_negatives=num_negatives,
        sampling=sampling,
        temperature=temperature,
        seed=seed,
        format=format_,
        output_scores=output_scores,
        too_few=too_few,
        near_duplicate=near_duplicate,
        cross_encoder=cross_encoder,
        index=index,
        factory=factory,
        index_dir=index_dir,
        ray_address=ray,
        precision=precision,
        batch_size=batch_size,
        max_seq_length=max_seq_length,
        cache_dir=cache_dir,
        no_cache=no_cache,
        on_invalid=on_invalid,
        unknown_qrels=unknown_qrels,
        corpus_storage=corpus_storage,
    )
    cfg = build_or_show(MineConfig, "mine", config, overrides, dry_run)
    if cfg is None:
        return
    if guard is not None and teacher is None:
        raise typer.BadParameter("--guard needs --teacher", param_hint="--guard")
    result = run_mining(cfg)
    print_table(
        f"negmine mine → {cfg.out}",
        result.stats.table() + [(f"time: {k}", f"{v:.1f} s") for k, v in result.timings.items()],
    )
    for warning in result.stats.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if teacher is not None:  # the shortcut for `negmine score --mined OUT --teacher SPEC --out OUT/scored`
        from pathlib import Path

        from negmine.scoring import ScoreConfig, score_mined

        scored = score_mined(ScoreConfig(mined=str(Path(cfg.out) / "mined.jsonl"), teacher=teacher,
                                         out=str(Path(cfg.out) / "scored"), max_seq_length=teacher_max_seq_length,
                                         data=cfg.data, split=cfg.split, guard=guard, batch_size=cfg.batch_size,
                                         cache_dir=cfg.cache_dir, no_cache=cfg.no_cache,
                                         show_progress_bar=cfg.show_progress_bar))
        print_table(f"negmine score → {scored.out_dir}", [(k, str(v)) for k, v in scored.stats.items()])
