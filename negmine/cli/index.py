"""``negmine index build``: encode a corpus once and persist an (approximate) index for ``mine --index-dir``."""

from __future__ import annotations

from typing import Annotated

import typer

from negmine.cli._options import (
    DataOpt,
    ModelPathOpt,
    RetrieverOpt,
    SeedOpt,
    SplitOpt,
    check_unknown_qrels,
    print_table,
)

index_app = typer.Typer(help="Build persisted search indexes (exact, ANN, compressed, out-of-core).",
                        no_args_is_help=True)

INDEX_EXAMPLES = [
    "negmine index build --retriever minilm --data scifact --factory Flat --out runs/scifact-index",
    "negmine index build --retriever minilm --data ./beir/msmarco --factory 'IVF65536,PQ48x8' --rerank 10 "
    "--nprobe 64 --out runs/msmarco-ivfpq",
    "negmine index build --retriever minilm --data ./beir/big --factory streamed --max-memory-mb 2048 --out runs/big",
]


@index_app.command("build")
def build(
    out: Annotated[str, typer.Option("--out", "-o", help="Index folder to write.")],
    retriever: RetrieverOpt = "minilm",
    data: DataOpt = "scifact",
    split: SplitOpt = "train",
    unknown_qrels: Annotated[str, typer.Option(help="Qrels naming ids the corpus or queries lack: error, skip or "
                                                    "keep (ArguAna's test qrels need one of the last two).")
                             ] = "error",
    model_path: ModelPathOpt = None,
    factory: Annotated[str, typer.Option(help="Flat, streamed (exact, out-of-core), a preset (ivf, ivfpq, hnsw, "
                                              "ivf-sq8, hnsw-sq8) or any FAISS factory string.")] = "Flat",
    metric: Annotated[str, typer.Option(help="ip (cosine for normalised vectors) or l2.")] = "ip",
    nprobe: Annotated[int | None, typer.Option(help="IVF lists visited per query (default 32).")] = None,
    ef_search: Annotated[int | None, typer.Option(help="HNSW efSearch (default 128).")] = None,
    rerank: Annotated[int | None, typer.Option(help="Fetch RERANK×k candidates and re-score them exactly "
                                                    "(for PQ/SQ).")] = None,
    train_size: Annotated[int | None, typer.Option(help="Vectors sampled to train IVF/PQ (default 64 per list).")
                          ] = None,
    recall_queries: Annotated[int, typer.Option(help="Queries of --split used to measure recall vs exact search "
                                                     "(0 = skip).")] = 200,
    recall_k: Annotated[int, typer.Option(help="k of the measured recall@k.")] = 100,
    max_memory_mb: Annotated[float, typer.Option(help="Memory bound of streamed exact search.")] = 1024,
    shard_rows: Annotated[int, typer.Option(help="Rows per on-disk embedding shard.")] = 1_000_000,
    precision: Annotated[str, typer.Option(help="Encoder precision (fp32, fp16, bf16, bf16-autocast, int8, "
                                                "int8-mixed, auto).")] = "fp32",
    batch_size: Annotated[int, typer.Option(help="Encoding batch size.")] = 32,
    cache_dir: Annotated[str | None, typer.Option(help="Embedding cache folder.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the embedding cache.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing index in --out.")] = False,
    seed: SeedOpt = 0,
    ray: Annotated[str | None, typer.Option("--ray", help="Encode the corpus on a Ray cluster: ADDRESS (host:port) "
                                                          'or auto (pip install "negmine[ray]").')] = None,
) -> None:
    """Encode the corpus of --data and write an index folder; prints its recall@k against exact search.

    Examples:

      negmine index build --retriever minilm --data scifact --factory Flat --out runs/scifact-index

      negmine index build --retriever minilm --data ./beir/msmarco --factory 'IVF65536,PQ48x8' --rerank 10
      --nprobe 64 --out runs/msmarco-ivfpq

      negmine mine --retriever minilm --data scifact --index-dir runs/scifact-index --out runs/mined
    """
    from negmine.retrieve import build_index

    check_unknown_qrels(unknown_qrels)
    manifest = build_index(retriever, data, out, split=split, unknown_qrels=unknown_qrels, factory=factory,
                           metric=metric, model_path=model_path, precision=precision, batch_size=batch_size,
                           cache_dir=cache_dir, no_cache=no_cache, nprobe=nprobe, ef_search=ef_search, rerank=rerank,
                           train_size=train_size, seed=seed if seed is not None else 0,
                           recall_queries=recall_queries, recall_k=recall_k, max_memory_mb=max_memory_mb,
                           shard_rows=shard_rows, overwrite=overwrite, ray_address=ray)
    recall = manifest.get("recall")
    rows = [("kind", manifest["kind"]), ("factory", manifest["factory"]), ("vectors", f"{manifest['ntotal']:,}"),
            ("dim", str(manifest["dim"])), ("metric", manifest["metric"]),
            ("recall", f"recall@{recall['k']} = {recall['value']:.4f} on {recall['queries']} {recall['query_source']} "
                       f"(vs exact search)" if recall else "exact (no approximation)")]
    rows += [(f"time: {k.removesuffix('_s')}", f"{v:.1f} s") for k, v in manifest["timings"].items()]
    print_table(f"negmine index build → {out}", rows)
