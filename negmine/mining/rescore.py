"""Optional cross-encoder rescoring of retrieval candidates (and of the positives) before the filters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from negmine._optional import require
from negmine.retrieve import Candidates


def rescore_with_cross_encoder(
    model: str | object,
    candidates: Candidates,
    query_texts: Sequence[str],
    doc_texts: Sequence[str],
    positive_rows: Sequence[Sequence[int]],
    batch_size: int = 32,
    show_progress_bar: bool = True,
) -> tuple[Candidates, list[np.ndarray]]:
    """Replace candidate scores by ``CrossEncoder.predict`` scores (rows re-sorted, higher = more relevant).

    Returns the rescored candidates and the cross-encoder score of each query's positives, so margins compare
    like with like.
    """
    st = require("sentence_transformers", "cross-encoder rescoring")
    ce = model if not isinstance(model, str) else load_cross_encoder(model, st)
    scores = np.full(candidates.scores.shape, -np.inf, dtype=np.float32)
    pos_scores: list[np.ndarray] = []
    for row in tqdm(range(len(query_texts)), desc="Rescoring with cross-encoder", disable=not show_progress_bar):
        valid = np.where(candidates.indices[row] >= 0)[0]
        pairs = [(query_texts[row], doc_texts[candidates.indices[row, j]]) for j in valid]
        pairs += [(query_texts[row], doc_texts[p]) for p in positive_rows[row]]
        out = np.asarray(ce.predict(pairs, batch_size=batch_size, show_progress_bar=False), dtype=np.float32).reshape(
            -1
        )
        scores[row, valid] = out[: len(valid)]
        pos_scores.append(out[len(valid) :])
    order = np.argsort(-scores, axis=1, kind="stable")
    return Candidates(
        candidates.query_ids,
        candidates.doc_ids,
        np.take_along_axis(candidates.indices, order, 1),
        np.take_along_axis(scores, order, 1),
    ), pos_scores


def load_cross_encoder(name: str, st: object = None) -> object:
    """A ``CrossEncoder`` through the one model resolver: a bad path is a one-line error naming --cross-encoder."""
    from negmine.encoders.presets import load_error, resolve_model

    resolved = resolve_model(name, option="--cross-encoder")
    st = st or require("sentence_transformers", "cross-encoder rescoring")
    try:
        return st.CrossEncoder(resolved.location)
    except (OSError, ValueError) as err:
        raise load_error("--cross-encoder", name, err) from err
