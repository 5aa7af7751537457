"""Running negmine on a Ray cluster (``pip install "negmine[ray]"``; ``--ray ADDRESS|auto``).

* **Encoding** (:class:`RayEmbeddingCache`): the texts missing from the embedding cache go through Ray Data in cache
  blocks (``map_batches`` over an actor pool of encoders: one model per actor, ``num_gpus=1`` per actor when the
  cluster has GPUs, one CPU per actor otherwise). The driver writes each returned block exactly where a local run
  writes it (same key, same longest-first block layout), so local and distributed runs share one cache and resume
  each other. Actors restart and their blocks are retried when a worker dies (``max_restarts`` /
  ``max_task_retries`` = -1); a block is written once, atomically, so the output does not change.
* **Search** (:class:`RayShardedIndex`): the corpus vectors are split in shards put in the object store; each shard
  is searched exactly for all queries by a Ray task (retried if its worker dies) and the per-shard top-k lists are
  merged in negmine's canonical order. :meth:`negmine.retrieve.Retriever.search` then rescoring the candidates with
  float64 sums makes the result independent of how the corpus was split: byte-identical to a one-machine run.

The model must be loadable on every node (same local folder, ``$NEGMINE_MODELS``, or a hub id); the cache folder
only needs to exist on the driver. The driver's ``negmine`` package is shipped to the workers (Ray ``py_modules``)
unless ``NEGMINE_RAY_SHIP_CODE=0``, so every node runs the same code.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["connect", "RayEmbeddingCache", "RayShardedIndex"]


def require_ray() -> Any:
    from negmine._optional import require

    return require("ray", "--ray")


def connect(address: str) -> Any:
    """Join the Ray cluster at ``address`` (``host:port``, ``ray://…``, ``auto``; ``local`` starts one in this
    process) once per process: ``ray``."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    runtime_env: dict[str, Any] = {}
    if os.environ.get("NEGMINE_RAY_SHIP_CODE", "1") != "0":
        import negmine

        runtime_env["py_modules"] = [negmine]
    ray.init(address=None if address == "local" else address, runtime_env=runtime_env or None, log_to_driver=False,
             logging_level=logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    logger.info("connected to Ray at %s: %s", address, ray.cluster_resources())
    return ray


def __getattr__(name: str) -> Any:
    if name == "RayEmbeddingCache":
        from negmine.distributed.encode import RayEmbeddingCache

        return RayEmbeddingCache
    if name == "RayShardedIndex":
        from negmine.distributed.search import RayShardedIndex

        return RayShardedIndex
    raise AttributeError(name)
