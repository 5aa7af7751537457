"""Encoding through Ray Data: cache blocks in, an actor pool of encoders, cache blocks out (see the package doc)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from negmine.encoders.cache import EmbeddingCache, as_text_sequence

logger = logging.getLogger(__name__)

#: folder where each encoder actor writes a file named after its pid (tests kill one mid-run); unset: nothing
PID_DIR_ENV = "NEGMINE_RAY_PID_DIR"


def encoder_spec(encoder: Any) -> dict[str, Any]:
    """What an actor needs to rebuild ``encoder``: the options of a sentence-transformers model given by folder or
    hub id (never the loaded weights), or the encoder object itself (pickled) for anything else."""
    from negmine.encoders.st import SentenceTransformerEncoder

    if isinstance(encoder, SentenceTransformerEncoder) and isinstance(encoder._model_arg, (str, os.PathLike)):
        return {"kind": "st", "model": str(encoder._model_arg),
                "options": {"query_prompt": encoder.query_prompt, "corpus_prompt": encoder.corpus_prompt,
                            "similarity": encoder.similarity, "precision": encoder.precision,
                            "max_seq_length": encoder.max_seq_length, "revision": encoder.revision,
                            "name": encoder.name}}
    return {"kind": "object", "encoder": encoder}


def build_encoder(spec: dict[str, Any], device: str | None) -> Any:
    if spec["kind"] == "st":
        from negmine.encoders.st import SentenceTransformerEncoder

        return SentenceTransformerEncoder(spec["model"], device=device, **spec["options"])
    return spec["encoder"]


class EncodeBlocks:
    """The Ray Data actor: one encoder, one cache block per row in, its vectors (as bytes) out."""

    def __init__(self, spec: dict[str, Any], kind: str, batch_size: int, fingerprint: dict[str, Any]) -> None:
        import ray

        pid_dir = os.environ.get(PID_DIR_ENV)
        if pid_dir:
            Path(pid_dir).mkdir(parents=True, exist_ok=True)
            (Path(pid_dir) / str(os.getpid())).touch()
        device = "cuda" if ray.get_gpu_ids() else ("cpu" if spec["kind"] == "st" else None)
        self.encoder = build_encoder(spec, device)
        mine = self.encoder.fingerprint()
        if mine != fingerprint:
            differ = sorted(k for k in set(mine) | set(fingerprint) if mine.get(k) != fingerprint.get(k))
            raise RuntimeError(f"the encoder on this Ray worker differs from the driver's in {differ}: every node "
                               "must load the same model files")
        self.encode = self.encoder.encode_queries if kind == "query" else self.encoder.encode_corpus
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        blocks, rows, dims, data = [], [], [], []
        for block, texts in zip(batch["block"], batch["texts"]):
            emb = np.ascontiguousarray(self.encode([str(t) for t in texts], batch_size=self.batch_size),
                                       dtype=np.float32)
            blocks.append(int(block))
            rows.append(emb.shape[0])
            dims.append(emb.shape[1] if emb.ndim == 2 else 0)
            data.append(emb.tobytes())
        return {"block": np.array(blocks, dtype=np.int64), "rows": np.array(rows, dtype=np.int64),
                "dim": np.array(dims, dtype=np.int64), "data": np.array(data, dtype=object)}


def tasks_of(n_blocks: int, actors: int, most: int) -> int:
    """Cache blocks per Ray task: at most ``most``, and few enough that each actor gets at least 4 tasks."""
    return max(1, min(most, n_blocks // (4 * max(1, actors))))


def pool_resources(ray: Any, n_blocks: int, max_actors: int | None = None) -> dict[str, Any]:
    """One actor per GPU when the cluster has GPUs (``num_gpus=1``), else one per CPU (``num_cpus=1``)."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    n = gpus if gpus else max(1, cpus)
    n = max(1, min(n, n_blocks, max_actors or n))
    return {"concurrency": n, "num_gpus": 1 if gpus else 0, "num_cpus": 1}


class RayEmbeddingCache(EmbeddingCache):
    """An :class:`EmbeddingCache` whose missing blocks are encoded on a Ray cluster.

    Args:
        encoder: the encoder (rebuilt on each actor from :func:`encoder_spec`).
        address: the Ray cluster (``host:port`` or ``auto``); joined on first use.
        batch_size: the encoding batch size (as a local run's: the same batches give the same vectors).
        root / block_size: as :class:`EmbeddingCache`.
        max_actors: cap the actor pool (default: every GPU, else every CPU, of the cluster).
        local_single_block: encode in this process when only one block is missing (e.g. a few queries): the same
            vectors, without the seconds an actor pool takes to start.
        window_blocks: most blocks whose texts the driver holds and submits at once (one Ray Data job each; 4,096
            blocks of 256 = ~1M texts).
        blocks_per_task: most cache blocks one Ray task encodes (fewer, larger tasks cost less scheduling); a window
            is still cut in at least 4 tasks per actor, so that every actor has work and a killed actor loses little.
    """

    def __init__(self, encoder: Any, address: str, root: str | os.PathLike | None = None, block_size: int = 256,
                 batch_size: int = 32, max_actors: int | None = None, local_single_block: bool = True,
                 window_blocks: int = 4096, blocks_per_task: int = 16) -> None:
        super().__init__(root, block_size)
        if window_blocks < 1:
            raise ValueError(f"window_blocks must be >= 1, got {window_blocks}")
        if blocks_per_task < 1:
            raise ValueError(f"blocks_per_task must be >= 1, got {blocks_per_task}")
        self.blocks_per_task = blocks_per_task
        self.encoder, self.address, self.batch_size, self.max_actors = encoder, address, batch_size, max_actors
        self.local_single_block, self.window_blocks = local_single_block, window_blocks

    def get_or_encode(self, texts: Sequence[str], encode: Callable[[Sequence[str]], np.ndarray],
                      fingerprint: dict[str, Any], kind: str,
                      progress: Callable[[int], None] | None = None) -> np.ndarray:
        texts = as_text_sequence(texts)  # a disk-backed corpus stays lazy: blocks are read window by window
        plan = self.start(texts, fingerprint, kind, progress)
        if plan.cached is not None:
            return plan.cached
        sizes = [plan.block_rows(i) for i in range(plan.num_blocks)]
        missing = [i for i in range(plan.num_blocks) if self.read_block(plan.block_path(i), sizes[i]) is None]
        if progress:
            progress(len(texts) - sum(sizes[i] for i in missing))
        if len(missing) == 1 and self.local_single_block:  # one block (e.g. the queries): not worth an actor pool
            self._block(plan.block_path(missing[0]), plan.block_texts(missing[0]), encode)
            if progress:
                progress(sizes[missing[0]])
        elif missing:
            self._encode_on_ray(plan, missing, kind, fingerprint, progress)
        for i in range(plan.num_blocks):
            block = self.read_block(plan.block_path(i), sizes[i])
            if block is None:
                raise RuntimeError(f"Ray encoding finished without cache block {plan.block_path(i)}")
            plan.put(i, block)
        return self.finish(plan)

    def _encode_on_ray(self, plan: Any, missing: list[int], kind: str, fingerprint: dict[str, Any],
                       progress: Callable[[int], None] | None) -> None:
        from negmine.distributed import connect

        ray = connect(self.address)
        pool = pool_resources(ray, len(missing), self.max_actors)
        logger.info("encoding %d cache blocks of %ss on Ray: %s", len(missing), kind, pool)
        done = set()
        # the driver reads the texts of at most `window_blocks` blocks at a time (a 10M-passage corpus is not turned
        # into one list of texts); each window is one Ray Data job over the actor pool
        for start in range(0, len(missing), self.window_blocks):
            items = [{"block": i, "texts": plan.block_texts(i)} for i in missing[start : start + self.window_blocks]]
            per_task = tasks_of(len(items), pool["concurrency"], self.blocks_per_task)
            ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / per_task))
            del items
            out = ds.map_batches(
                EncodeBlocks,
                fn_constructor_kwargs={"spec": encoder_spec(self.encoder), "kind": kind,
                                       "batch_size": self.batch_size, "fingerprint": fingerprint},
                batch_size=per_task,
                batch_format="numpy",
                max_restarts=-1,
                max_task_retries=-1,
                **pool,
            )
            for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                for block, rows, dim, data in zip(batch["block"], batch["rows"], batch["dim"], batch["data"]):
                    if int(block) in done:  # a retried block that had already come back: written once
                        continue
                    emb = np.frombuffer(data, dtype=np.float32).reshape(int(rows), int(dim))
                    self.write_block(plan.block_path(int(block)), emb)
                    done.add(int(block))
                    if progress:
                        progress(int(rows))


def ray_cache(encoder: Any, address: str, cache: Any = None, *, cache_dir: str | os.PathLike | None = None,
              no_cache: bool = False, batch_size: int = 32) -> RayEmbeddingCache:
    """The cache a ``--ray`` run encodes through: the given cache's folder (or ``cache_dir``, default
    ``$NEGMINE_CACHE``), or a fresh temporary folder when caching is off (Ray encoding works in cache blocks)."""
    import tempfile

    if no_cache:
        root: Any = tempfile.mkdtemp(prefix="negmine-ray-cache-")
    else:
        root = getattr(cache, "root", None) or cache_dir
    block_size = getattr(cache, "block_size", 256)
    return RayEmbeddingCache(encoder, address, root, block_size=block_size, batch_size=batch_size)
