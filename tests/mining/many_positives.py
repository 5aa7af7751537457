"""A synthetic many-positive world: one query with 5,000 positives in a 50,000-document corpus (random vectors),
plus 100 ordinary queries. Run as a script it mines it with each margin reference and writes the negatives and the
peak RSS of this process as JSON (the memory test runs it in a child process)."""

from __future__ import annotations

import json
import resource
import sys

import numpy as np

from negmine.testing import TableEncoder

N_DOCS, BIG_POSITIVES, N_SMALL, DIM = 50_000, 5_000, 100, 32
OPTIONS = dict(strategy="perc-pos", percentage=0.95, range_max=50, num_negatives=7, too_few="keep", format="triplet")




def many_positive_world(seed=0):
    from negmine.data import RetrievalData

    rng = np.random.default_rng(seed)
    docs = rng.standard_normal((N_DOCS, DIM)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    corpus = {f"d{i}": {"title": "", "text": f"passage {i}"} for i in range(N_DOCS)}
    table = {f"passage {i}": docs[i] for i in range(N_DOCS)}
    queries, qrels = {}, {}
    big = rng.choice(N_DOCS, size=BIG_POSITIVES, replace=False)
    # the big query sits near the mean of its positives, so they spread over the top of its ranking
    centre = docs[big].mean(0)
    vec = centre / np.linalg.norm(centre)
    queries["big"] = "the query with many positives"
    table[queries["big"]] = vec
    qrels["big"] = {f"d{j}": 1 for j in big}
    for i in range(N_SMALL):
        qid = f"q{i}"
        pos = rng.choice(N_DOCS, size=int(rng.integers(1, 4)), replace=False)
        v = docs[pos[0]] + 0.7 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
        queries[qid] = f"small query {i}"
        table[queries[qid]] = v / np.linalg.norm(v)
        qrels[qid] = {f"d{j}": 1 for j in pos}
    return RetrievalData(corpus, queries, qrels, name="many-positives", split="train"), TableEncoder(table)


def mined_lists(records, margin_reference):
    if margin_reference != "each":
        return {r.query_id: r.negative_ids for r in records}
    return {
        f"{r.query_id}\t{p}": [r.negative_ids[i] for i in r.negatives_of(k)]
        for r in records
        for k, p in enumerate(r.positive_ids)
    }


def peak_rss_bytes() -> int:
    """This process's peak RSS. ``VmHWM`` belongs to the process's own memory map; ``ru_maxrss`` would not do: Linux
    carries the parent's peak into a forked child across ``exec`` (the pytest process that spawns this one may
    already hold models of 1.5 GB)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main(out: str, block_candidates: int) -> None:
    from negmine.mining import mine_hard_negatives

    data, enc = many_positive_world()
    result = {}
    for reference in ("each", "lowest", "highest"):
        mined = mine_hard_negatives(
            data,
            enc,
            margin_reference=reference,
            block_candidates=block_candidates,
            no_cache=True,
            show_progress_bar=False,
            **OPTIONS,
        )
        result[reference] = mined_lists(mined.records, reference)
        result[f"{reference}_depth_max"] = mined.stats.to_dict()["search"]["depth_max"]
    result["peak_rss_bytes"] = peak_rss_bytes()
    with open(out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
