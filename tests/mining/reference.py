"""A deliberately plain, loop-based miner used as the oracle for HardNegativeMiner (top sampling)."""

from __future__ import annotations


def reference_mine(
    data,
    doc_ids,
    q_emb,
    d_emb,
    query_ids,
    *,
    range_min,
    range_max,
    num_negatives,
    max_score=None,
    min_score=None,
    margin=None,
    percentage=None,
):
    texts = [data.doc_text(d) for d in doc_ids]
    out = {}
    for qi, qid in enumerate(query_ids):
        positives = data.positives(qid)
        pos_texts = {data.doc_text(p) for p in positives}
        pos_scores = [float(q_emb[qi] @ d_emb[doc_ids.index(p)]) for p in positives]
        lowest = min(pos_scores)
        sims = [(float(q_emb[qi] @ d_emb[j]), j) for j in range(len(doc_ids))]
        sims.sort(key=lambda t: (-t[0], t[1]))
        rank, chosen = 0, []
        for score, j in sims:
            if doc_ids[j] in positives or doc_ids[j] == qid or texts[j] in pos_texts:
                continue
            r, rank = rank, rank + 1
            if not range_min <= r < range_max:
                continue
            if max_score is not None and not score < max_score:
                continue
            if min_score is not None and not score >= min_score:
                continue
            if margin is not None and not score < lowest - margin:
                continue
            if percentage is not None and not score < lowest - abs(lowest) * (1 - percentage):
                continue
            chosen.append(doc_ids[j])
            if len(chosen) == num_negatives:
                break
        out[qid] = chosen
    return out
