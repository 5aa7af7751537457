"""LLM judges: the ARHN-style two-stage judge and the cheaper pointwise P(yes) judge.

:class:`ARHNJudge` (Choi et al., 2026; prompts are ARHN-style, see :mod:`negmine.relabel.prompts`):

1. **Stage 1**, one prompt per (query, passage): the model copies a verbatim answer span or says ``NO_ANSWER``.
   A span that is not in the passage (after whitespace/case normalisation) is recorded as ``unverified`` and
   counts as no answer; a reply in neither form is ``unparseable`` (unsure).
2. **Stage 2**, listwise: the candidate set (positives and negatives, each with its snippet) is ranked by direct
   answerability in RankGPT format, with a sliding window for sets longer than ``window``. Missing or repeated
   identifiers are repaired and the repair is recorded; a window with no identifier at all makes the ranking of
   that query unsure.

:class:`PointwiseLLMJudge` asks "does the passage directly answer the query?" once per pair and reads
P(Yes) / (P(Yes) + P(No)) from the first answer token's logits: one forward pass, no generation.

Both batch their calls over many queries (``judge_many``): all stage-1 pairs go to the backend together
(concurrently for servers, batched in-process), then stage 2 runs per query (concurrently for servers). Raw
outputs go through a :class:`~negmine.relabel.cache.JudgmentCache`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from negmine.errors import ConfigError
from negmine.relabel.base import (
    NO_ANSWER,
    UNPARSEABLE,
    UNVERIFIED,
    VERIFIED,
    ChatClient,
    Completion,
    Judgment,
    Label,
    Usage,
)
from negmine.relabel.cache import JudgmentCache, cache_key
from negmine.relabel.parsing import parse_permutation, parse_snippet
from negmine.relabel.prompts import PROMPT_VERSION, fence, pointwise_messages, stage1_messages, stage2_messages
from negmine.relabel.window import sliding_window_rank

Item = tuple[str, Sequence[str], int]  # (query, passages with the positives first, number of positives)

ARHN_CITATION = """@inproceedings{choi2026arhn,
  title = {Answer-Centric Relabeling of Hard Negatives with Open-Source LLMs},
  author = {Choi and others},
  booktitle = {SIGIR},
  year = {2026},
  note = {arXiv:2604.11092}
}"""


def sub_batch_size(client: Any) -> int:
    """Requests per backend call between cache writes: enough to keep a server's concurrency or an in-process
    batch busy, few enough that a killed run loses little."""
    return max(4 * getattr(client, "concurrency", 1), getattr(client, "batch_size", 1))


def cached_complete(client: ChatClient, cache: JudgmentCache, keys: list[str], conversations: list[list[dict]],
                    max_tokens: int, usage: Usage, stage: str,
                    progress: Callable[[int, int], None] | None = None) -> list[Completion]:
    """Answer ``conversations`` from the cache where possible and from ``client`` otherwise (misses are cached);
    ``progress(done, total)`` is called once the cache is read and after each sub-batch."""
    results: list[Completion | None] = []
    todo: list[int] = []
    for i, key in enumerate(keys):
        hit = cache.get(key)
        if hit is None:
            results.append(None)
            todo.append(i)
        else:
            results.append(Completion(hit["text"], hit.get("prompt_tokens", 0), hit.get("completion_tokens", 0),
                                      cached=True))
    usage.add(**{f"{stage}_cache_hits": len(keys) - len(todo)})
    if stage == "stage1":
        usage.add(stage1_cached_pairs=len(keys) - len(todo))
    if progress is not None:
        progress(len(keys) - len(todo), len(keys))
    # sub-batches, cached as each finishes, so a killed run loses at most one sub-batch of answers
    size = sub_batch_size(client)
    for offset in range(0, len(todo), size):
        part = todo[offset:offset + size]
        start = time.perf_counter()
        fresh = client.complete_many([conversations[i] for i in part], max_tokens=max_tokens)
        usage.add(**{f"{stage}_seconds": time.perf_counter() - start, f"{stage}_calls": len(part)})
        for i, completion in zip(part, fresh, strict=True):
            results[i] = completion
            if completion.error is None:  # failures are retried on the next run, not cached
                cache.put(keys[i], {"text": completion.text, "prompt_tokens": completion.prompt_tokens,
                                    "completion_tokens": completion.completion_tokens})
        if progress is not None:
            progress(len(keys) - len(todo) + offset + len(part), len(keys))
    return results  # type: ignore[return-value]


class ARHNJudge:
    """Two-stage ARHN-style LLM judge: verbatim answer snippets, then listwise ranking by answerability.

    Args:
        client: a chat backend (:class:`~negmine.relabel.clients.OpenAIChatClient`, ``LlamaCppChatClient``,
            ``TransformersChatClient``) or a test double with the same ``complete_many``.
        cache: raw-output cache; an in-memory one when ``None``.
        window: the most passages one stage-2 prompt ranks (RankGPT: 20).
        step: how far the stage-2 window moves (RankGPT: 10).
        passes: backward sliding-window passes.
        snippet_max_tokens: generation budget of a stage-1 answer.
        rank_max_tokens: generation budget of a stage-2 ranking; ``None``: ``6 * window + 10``.
        max_passage_words: passages are cut to this many words inside prompts (``None``: never).
        rank_max_passage_words: the same for stage-2 prompts, which hold a whole window of passages plus their
            snippets (default: ``max_passage_words``).
        name: label written into judgments.

    Example:
        >>> from negmine.relabel.testing import ScriptedChatClient
        >>> client = ScriptedChatClient(lambda messages: "NO_ANSWER" if "ANSWER:" in messages[-1]["content"]
        ...                             else "[1] > [2]")
        >>> [j.rank for j in ARHNJudge(client).judge("q", ["a positive", "a negative"], num_positives=1)]
        [0, 1]
    """

    citation = ARHN_CITATION

    def __init__(self, client: ChatClient, *, cache: JudgmentCache | None = None, window: int = 20, step: int = 10,
                 passes: int = 1, snippet_max_tokens: int = 96, rank_max_tokens: int | None = None,
                 max_passage_words: int | None = 300, rank_max_passage_words: int | None = -1,
                 name: str | None = None) -> None:
        if window < 2 or not 1 <= step < window:
            raise ConfigError(f"need window >= 2 and 1 <= step < window, got window={window}, step={step}")
        self.client = client
        self.cache = cache if cache is not None else JudgmentCache()
        self.window, self.step, self.passes = window, step, passes
        self.snippet_max_tokens = snippet_max_tokens
        self.rank_max_tokens = rank_max_tokens or 6 * window + 10
        self.max_passage_words = max_passage_words
        self.rank_max_passage_words = max_passage_words if rank_max_passage_words == -1 else rank_max_passage_words
        self.name = name or f"arhn:{client.get_config_dict().get('model') or client.get_config_dict().get('file')}"
        self.usage = Usage()

    def get_config_dict(self) -> dict[str, Any]:
        return {"type": "arhn", "client": self.client.get_config_dict(), "prompt_version": PROMPT_VERSION,
                "window": self.window, "step": self.step, "passes": self.passes,
                "snippet_max_tokens": self.snippet_max_tokens, "rank_max_tokens": self.rank_max_tokens,
                "max_passage_words": self.max_passage_words, "rank_max_passage_words": self.rank_max_passage_words}

    def _key(self, kind: str, payload: Any, max_tokens: int) -> str:
        words = self.max_passage_words if kind == "stage1" else self.rank_max_passage_words
        config = {"client": self.client.get_config_dict(), "max_tokens": max_tokens, "max_passage_words": words}
        return cache_key(config, PROMPT_VERSION, kind, payload)

    def judge(self, query: str, passages: Sequence[str], num_positives: int = 1) -> list[Judgment]:
        return self.judge_many([(query, passages, num_positives)])[0]

    def judge_many(self, items: Sequence[Item]) -> list[list[Judgment]]:
        """Judge many queries: all stage-1 pairs first (concurrent/batched), then stage 2 per query."""
        # ---- stage 1: one prompt per (query, passage)
        pairs = [(q, p) for q, passages, _ in items for p in passages]
        keys = [self._key("stage1", [q, p], self.snippet_max_tokens) for q, p in pairs]
        conversations = [stage1_messages(q, p, self.max_passage_words) for q, p in pairs]
        completions = cached_complete(self.client, self.cache, keys, conversations, self.snippet_max_tokens,
                                       self.usage, "stage1")
        self.usage.add(stage1_pairs=len(pairs))
        snippets = []
        for (_, passage), completion in zip(pairs, completions, strict=True):
            result = parse_snippet(completion.text, passage, fence(passage))
            snippets.append((result, completion))
            self.usage.add(**{f"stage1_{result.status}": 1})
        # ---- stage 2: listwise ranking per query
        per_query = []
        offset = 0
        for _, passages, _ in items:
            per_query.append(snippets[offset:offset + len(passages)])
            offset += len(passages)
        workers = max(1, min(getattr(self.client, "concurrency", 1), len(items)))
        start = time.perf_counter()
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                rankings = list(pool.map(lambda a: self._rank(*a), zip(items, per_query)))
        else:
            rankings = [self._rank(item, snip) for item, snip in zip(items, per_query, strict=True)]
        self.usage.add(stage2_wall_seconds=time.perf_counter() - start)
        return [self._judgments(snip, ranking) for snip, ranking in zip(per_query, rankings, strict=True)]

    def _rank(self, item: Item, snippets: list) -> dict[str, Any]:
        query, passages, _ = item
        answers = [result.answer for result, _ in snippets]
        raw_outputs: list[str] = []

        def rank_fn(indices: Sequence[int]) -> tuple[list[int], dict[str, Any]] | None:
            window_passages = [passages[i] for i in indices]
            window_answers = [answers[i] for i in indices]
            key = self._key("stage2", [query, window_passages, window_answers], self.rank_max_tokens)
            messages = stage2_messages(query, window_passages, window_answers, self.rank_max_passage_words)
            completion = cached_complete(self.client, self.cache, [key], [messages], self.rank_max_tokens,
                                          self.usage, "stage2")[0]
            self.usage.add(stage2_pairs=len(indices), stage2_cached_pairs=len(indices) if completion.cached else 0)
            permutation = parse_permutation(completion.text, len(indices))
            if permutation is None:
                raw_outputs.append(completion.error or completion.text[:200])
                self.usage.add(stage2_unparseable=1)
                return None
            if permutation.repaired:
                self.usage.add(stage2_repaired=1)
            return permutation.order, ({"repair": permutation.repair} if permutation.repaired else {})

        result = sliding_window_rank(len(passages), rank_fn, self.window, self.step,
                                     self.passes if len(passages) > self.window else 1)
        if len(passages) == 1:  # nothing to rank
            return {"order": [0], "failed": False, "windows": []}
        return {"order": result.order, "failed": result.failed, "windows": result.windows, "raw": raw_outputs}

    def _judgments(self, snippets: list, ranking: dict[str, Any]) -> list[Judgment]:
        rank_of = {index: position for position, index in enumerate(ranking["order"])}
        repairs = [w["repair"] for w in ranking["windows"] if w.get("repair")]
        judgments = []
        for i, (result, completion) in enumerate(snippets):
            if result.status == VERIFIED:
                label, rationale = Label.POSITIVE, "verified answer snippet"
            elif result.status == NO_ANSWER:
                label, rationale = Label.NEGATIVE, "NO_ANSWER"
            elif result.status == UNVERIFIED:
                label, rationale = Label.NEGATIVE, f"snippet not found in the passage: {result.raw_answer[:200]!r}"
            else:
                label = Label.UNSURE
                rationale = (f"stage 1 request failed: {completion.error}" if completion.error
                             else f"stage 1 output not parseable: {completion.text[:200]!r}")
            extra: dict[str, Any] = {"windows": len(ranking["windows"])}
            if repairs:
                extra["repairs"] = repairs
            if ranking["failed"]:
                extra["stage2_error"] = "stage 2 output not parseable: " + " | ".join(map(repr, ranking["raw"]))
            judgments.append(Judgment(label=label, rank=None if ranking["failed"] else rank_of[i],
                                      answer=result.answer, answer_status=result.status, rationale=rationale,
                                      judge=self.name, extra=extra))
        return judgments


class PointwiseLLMJudge:
    """P(yes) judge: one forward pass per pair, the first answer token's P(Yes) / (P(Yes) + P(No)).

    Ranks the candidate set by P(yes); a passage with P(yes) >= ``threshold`` counts as answering the query
    (the ARHN filter rule's "has an answer"), and P(yes) inside ``unsure_band`` is recorded as unsure.

    Args:
        client: a backend with ``yes_probability(conversations)`` (all three clients have one; the server must
            return ``top_logprobs``).
        threshold: P(yes) at or above which the label is positive.
        unsure_band: ``(low, high)``: P(yes) in ``[low, high)`` is unsure; ``None``: never.
        cache: raw-score cache; in memory when ``None``.
        max_passage_words: passages are cut to this many words inside prompts.
    """

    def __init__(self, client: Any, *, threshold: float = 0.5, unsure_band: tuple[float, float] | None = None,
                 cache: JudgmentCache | None = None, max_passage_words: int | None = 300,
                 name: str | None = None) -> None:
        if not hasattr(client, "yes_probability"):
            raise ConfigError(f"{type(client).__name__} cannot read next-token probabilities")
        self.client = client
        self.threshold = threshold
        self.unsure_band = unsure_band
        self.cache = cache if cache is not None else JudgmentCache()
        self.max_passage_words = max_passage_words
        self.name = name or f"llm-yes:{client.get_config_dict().get('model') or client.get_config_dict().get('file')}"
        self.usage = Usage()

    def get_config_dict(self) -> dict[str, Any]:
        return {"type": "llm-yes", "client": self.client.get_config_dict(), "prompt_version": PROMPT_VERSION,
                "threshold": self.threshold, "unsure_band": self.unsure_band,
                "max_passage_words": self.max_passage_words}

    def judge(self, query: str, passages: Sequence[str], num_positives: int = 1) -> list[Judgment]:
        return self.judge_many([(query, passages, num_positives)])[0]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        config = {"client": self.client.get_config_dict(), "max_passage_words": self.max_passage_words}
        keys = [cache_key(config, PROMPT_VERSION, "pointwise", [q, p]) for q, p in pairs]
        scores: list[float | None] = []
        todo = []
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            scores.append(None if hit is None else hit["p_yes"])
            if hit is None:
                todo.append(i)
        size = sub_batch_size(self.client)  # cached per sub-batch, as cached_complete does
        for offset in range(0, len(todo), size):
            part = todo[offset:offset + size]
            start = time.perf_counter()
            fresh = self.client.yes_probability([pointwise_messages(*pairs[i], self.max_passage_words)
                                                 for i in part])
            self.usage.add(pointwise_seconds=time.perf_counter() - start, pointwise_calls=len(part))
            for i, p in zip(part, fresh, strict=True):
                scores[i] = p
                if p is not None:
                    self.cache.put(keys[i], {"p_yes": p})
        self.usage.add(pointwise_pairs=len(pairs), pointwise_cached_pairs=len(pairs) - len(todo))
        return scores

    def judge_many(self, items: Sequence[Item]) -> list[list[Judgment]]:
        pairs = [(q, p) for q, passages, _ in items for p in passages]
        return per_item_judgments(items, self.score_pairs(pairs), self.threshold, self.unsure_band, self.name)


def per_item_judgments(items: Sequence[Item], scores: Sequence[float | None], threshold: float,
                       unsure_band: tuple[float, float] | None, judge: str) -> list[list[Judgment]]:
    """Split the flat pair scores of ``items`` (item after item, passage after passage) into one judgment list per
    item with :func:`scores_to_judgments`."""
    out, offset = [], 0
    for _, passages, _ in items:
        out.append(scores_to_judgments(scores[offset:offset + len(passages)], threshold, unsure_band, judge))
        offset += len(passages)
    return out


def scores_to_judgments(scores: Sequence[float | None], threshold: float, unsure_band: tuple[float, float] | None,
                        judge: str) -> list[Judgment]:
    """Pointwise scores -> judgments ranked by score (ties keep input order); ``None`` scores are unsure/unranked."""
    ranked = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: -scores[i])  # type: ignore
    rank_of = {index: position for position, index in enumerate(ranked)}
    judgments = []
    for i, score in enumerate(scores):
        if score is None:
            judgments.append(Judgment(Label.UNSURE, None, None, answer_status=UNPARSEABLE, judge=judge,
                                      rationale="no score (request failed or prompt too long)"))
            continue
        if unsure_band is not None and unsure_band[0] <= score < unsure_band[1]:
            label = Label.UNSURE
        else:
            label = Label.POSITIVE if score >= threshold else Label.NEGATIVE
        judgments.append(Judgment(label, float(score), rank_of[i], judge=judge, rationale=f"score={score:.4f}"))
    return judgments
