"""A deliberately plain, loop-based miner used as the oracle for HardNegativeMiner (top sampling)."""

from __future__ import annotations

import numpy as np


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
    margin_reference="lowest",
):
    """Negative ids per query (``lowest``/``highest``) or per (query, positive id) (``each``).

    Queries without a positive in the corpus are left out. Scores are computed in float32 as the miner does; the
    filter logic is one plain loop over the score-sorted corpus.
    """
    texts = [data.doc_text(d) for d in doc_ids]
    row = {d: i for i, d in enumerate(doc_ids)}
    out = {}
    for qi, qid in enumerate(query_ids):
        positives = [p for p in data.positives(qid) if p in row]
        if not positives:
            continue
        positive_set = set(positives)
        excluded = [e for e in data.excluded(qid) if e in row]
        banned_texts = {texts[row[p]] for p in positives + excluded}
        sims = (d_emb @ q_emb[qi]).astype(np.float32)
        pos_scores = {p: np.float32(sims[row[p]]) for p in positives}
        order = np.lexsort((np.arange(len(doc_ids)), -sims))  # score descending, ties by corpus row
        # the candidates in the rank range that pass the filters not relative to a positive
        rank, window = 0, []
        for j in map(int, order):
            if doc_ids[j] in positive_set or doc_ids[j] == qid or texts[j] in banned_texts:
                continue
            r, rank = rank, rank + 1
            if r >= range_max:
                break
            if r < range_min:
                continue
            score = sims[j]
            if max_score is not None and not score < max_score:
                continue
            if min_score is not None and not score >= min_score:
                continue
            window.append((score, doc_ids[j]))

        def pick(p):
            chosen = []
            for score, d in window:
                if margin is not None and not score < p - np.float32(margin):
                    continue
                if percentage is not None and not score < p - abs(p) * np.float32(1 - percentage):
                    continue
                chosen.append(d)
                if len(chosen) == num_negatives:
                    break
            return chosen

        if margin_reference == "each":
            for p in positives:
                out[(qid, p)] = pick(pos_scores[p])
        else:
            ref = min if margin_reference == "lowest" else max
            out[qid] = pick(ref(pos_scores.values()))
    return out
