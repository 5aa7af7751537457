"""Pseudo queries: in-domain training queries made from a corpus, for when labelled queries are few.

A corpus-specific student distils its teacher on the queries it is trained with; SciFact gives 809 labelled train
queries for a 5,183-document corpus. GPL (Wang et al., NAACL 2022, arXiv 2112.07577) adapts a dense retriever to an
unlabelled corpus by generating queries from its documents and letting a teacher score the mined candidates; ICT
(Lee et al., ACL 2019, arXiv 1906.00300) takes a sentence of a passage as its query. Two methods:

- ``sentence``: one sentence of the document, drawn at random among those of ``min_words``..``max_words`` words
  (ICT's query; the document stays whole in the corpus, so its positive is easy and the signal that remains is the
  teacher's ranking of the mined negatives). Costs nothing.
- ``llm``: a chat model writes one query the document answers (GPL's doc2query step, with an instruct LLM in place of
  T5): an OpenAI-compatible server (``URL@MODEL``), a ``.gguf`` file (llama.cpp) or a model folder, the same targets
  as the ``llm:`` judges. Every answer goes to ``generations.jsonl`` in the output folder: a killed run resumes.

Documents are drawn uniformly from the corpus with a seed and no qrels are read, so no split's labels (dev or test)
steer which documents get queries. Each query's id is ``pseudo-<doc id>`` and its one positive is its document.

:func:`make_pseudo_queries` writes a BEIR folder over the same corpus (``corpus`` linked, not copied): the source's
queries plus the pseudo ones in ``queries.jsonl``, the source's qrels files linked, ``qrels/<split>.tsv`` holding the
pseudo queries and, with ``merge`` set, ``qrels/<merge>+<split>.tsv`` holding that source split's rows and the pseudo
ones (the split to mine and train on), plus ``pseudo.json`` (counts) and ``manifest.json``.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from negmine.errors import ConfigError, DataError

METHODS = ("sentence", "llm")
PROMPT_VERSION = "pseudo-query-v1"
ID_PREFIX = "pseudo-"
GENERATIONS = "generations.jsonl"
# a sentence ends at . ! ? followed by white space and an upper-case letter, a digit or an opening bracket/quote;
# the few abbreviations that end that way in scientific text do not end one
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "vs.", "Fig.", "Figs.", "Ref.", "Refs.", "No.", "approx.", "cf.", "Dr.",
                  "ca.", "resp.", "St.", "Eq.", "Eqs.")
SYSTEM_PROMPT = "You write search queries for a retrieval system. Answer with the query only."
USER_PROMPT = ("Write one short search query that the passage below answers: a question or a claim a reader would "
               "type to find it, in the passage's language, without copying a whole sentence.\n\nPassage:\n{passage}"
               "\n\nQuery:")


@dataclass(frozen=True)
class PseudoQuery:
    """A generated query and the document it was made from (its one positive)."""

    query_id: str
    text: str
    doc_id: str


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a rule-based splitter for English prose: no model, deterministic)."""
    pieces = [p.strip() for p in _BOUNDARY.split(text.strip()) if p.strip()]
    out: list[str] = []
    for piece in pieces:
        if out and out[-1].endswith(_ABBREVIATIONS):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def sentence_query(text: str, rng: random.Random, min_words: int = 6, max_words: int = 40) -> str | None:
    """One sentence of ``text`` with ``min_words``..``max_words`` words, drawn with ``rng`` (``None``: none fits)."""
    fits = [s for s in split_sentences(text) if min_words <= len(s.split()) <= max_words]
    return rng.choice(fits) if fits else None


def choose_documents(doc_ids: Sequence[str], n: int | None, seed: int) -> list[str]:
    """``n`` documents drawn uniformly without replacement (all of them, in corpus order, when ``n`` is ``None`` or
    not below the corpus size), returned in corpus order."""
    if n is None or n >= len(doc_ids):
        return list(doc_ids)
    if n < 1:
        raise ConfigError(f"n={n} pseudo queries: expected at least 1")
    picked = set(random.Random(seed).sample(range(len(doc_ids)), n))
    return [doc_ids[i] for i in sorted(picked)]


def clean_generated(text: str, max_words: int = 64) -> str | None:
    """The query in a chat model's answer: its first non-empty line without a ``Query:`` label or quotes
    (``None``: empty, or longer than ``max_words`` words, which is a passage copied rather than a query)."""
    for line in text.strip().splitlines():
        line = re.sub(r"^\s*(?:\*\*)?(?:search\s+)?query\s*(?:\*\*)?\s*:\s*", "", line.strip(), flags=re.I)
        line = line.strip().strip("\"'`*").strip()
        if line:
            return line if len(line.split()) <= max_words else None
    return None


def generation_messages(passage: str, max_passage_words: int | None) -> list[dict[str, str]]:
    words = passage.split()
    if max_passage_words is not None and len(words) > max_passage_words:
        passage = " ".join(words[:max_passage_words])
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_PROMPT.format(
        passage=passage)}]


def sentence_queries(texts: Mapping[str, str], doc_ids: Sequence[str], *, seed: int = 0, min_words: int = 6,
                     max_words: int = 40) -> tuple[list[PseudoQuery], int]:
    """ICT-style queries for ``doc_ids`` (``texts``: doc id -> text); returns the queries and how many documents had
    no sentence of a fitting length. Each document draws with its own seeded generator, so a document's query does
    not depend on which other documents were drawn."""
    out, missing = [], 0
    for doc_id in doc_ids:
        query = sentence_query(texts[doc_id], random.Random(f"{seed}:{doc_id}"), min_words, max_words)
        if query is None:
            missing += 1
        else:
            out.append(PseudoQuery(ID_PREFIX + doc_id, query, doc_id))
    return out, missing


def llm_queries(texts: Mapping[str, str], doc_ids: Sequence[str], client: Any, *, cache: Any = None,
                max_tokens: int = 48, max_passage_words: int | None = 300, progress: Any = None
                ) -> tuple[list[PseudoQuery], int]:
    """Queries written by ``client`` (a chat backend of :mod:`negmine.relabel.clients`) for ``doc_ids``; answers go
    through ``cache`` (a :class:`~negmine.relabel.cache.JudgmentCache`) per sub-batch, as the judges' do
    (:func:`negmine.relabel.llm.cached_complete`), so a rerun asks only for what is missing. ``progress(done,
    total)`` follows the answers. Returns the queries and how many answers held no usable query (an error or an
    empty/overlong answer: errors are not cached, so a rerun retries them)."""
    from negmine.relabel.base import Usage
    from negmine.relabel.cache import JudgmentCache, cache_key
    from negmine.relabel.llm import cached_complete

    cache = cache if cache is not None else JudgmentCache()
    config = {**client.get_config_dict(), "max_tokens": max_tokens, "max_passage_words": max_passage_words}
    keys = [cache_key(config, PROMPT_VERSION, "query", texts[d]) for d in doc_ids]
    conversations = [generation_messages(texts[d], max_passage_words) for d in doc_ids]
    replies = cached_complete(client, cache, keys, conversations, max_tokens, Usage(), "query", progress)
    out, failed = [], 0
    for doc_id, reply in zip(doc_ids, replies, strict=True):
        query = None if reply.error is not None else clean_generated(reply.text)
        if query is None:
            failed += 1
        else:
            out.append(PseudoQuery(ID_PREFIX + doc_id, query, doc_id))
    return out, failed


@dataclass
class PseudoConfig:
    """Options of ``negmine pseudo``.

    Args:
        data: the source BEIR folder (or a dataset name under ``$NEGMINE_DATA``).
        out: the BEIR folder written (module docstring).
        method: ``sentence`` or ``llm``.
        n: documents to make queries from (``None``: every document).
        seed: the draw of documents and of sentences.
        model: the chat model of ``method="llm"``: ``URL@MODEL``, a ``.gguf`` file or a model folder.
        split: the qrels split name of the pseudo queries.
        merge: a source qrels split to write merged with the pseudo queries as ``<merge>+<split>``.
        min_words / max_words: sentence lengths ``sentence`` draws from.
        max_tokens / max_passage_words / n_ctx / n_threads / concurrency: ``llm`` backend settings.
    """

    data: str = ""
    out: str = "runs/pseudo"
    method: str = "sentence"
    n: int | None = None
    seed: int = 0
    model: str | None = None
    split: str = "pseudo"
    merge: str | None = None
    min_words: int = 6
    max_words: int = 40
    max_tokens: int = 48
    max_passage_words: int | None = 300
    n_ctx: int = 4096
    n_threads: int | None = None
    concurrency: int = 4
    show_progress_bar: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from negmine.errors import check_choice

        check_choice("method", self.method, METHODS)
        if self.method == "llm" and not self.model:
            raise ConfigError("--method llm needs --model: URL@MODEL, a .gguf file or a model folder")
        if not 1 <= self.min_words <= self.max_words:
            raise ConfigError(f"min_words={self.min_words}, max_words={self.max_words}: expected "
                              "1 <= min_words <= max_words")
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", self.split) or (self.merge is not None and not re.fullmatch(
                r"[A-Za-z0-9_.+-]+", self.merge)):
            raise ConfigError(f"split {self.split!r} / merge {self.merge!r}: use letters, digits and _ . + -")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PseudoResult:
    out_dir: Path
    queries: list[PseudoQuery]
    stats: dict[str, Any]

    @property
    def splits(self) -> list[str]:
        return [s for s in (self.stats["split"], self.stats.get("merged_split")) if s]


def make_pseudo_queries(cfg: PseudoConfig, *, client: Any = None) -> PseudoResult:
    """Make pseudo queries for ``cfg.data``'s corpus and write the BEIR folder ``cfg.out`` (module docstring).

    ``client`` overrides the chat backend of ``cfg.model`` (tests, a loaded model)."""
    from negmine.data import load_beir_corpus, load_beir_queries
    from negmine.data.beir import doc_text, find_beir_file, resolve_data_path
    from negmine.io import write_json, write_manifest

    if not cfg.data:
        raise ConfigError("no data: pass --data (a BEIR folder or dataset name)")
    started = time.perf_counter()
    source = Path(resolve_data_path(cfg.data))
    if not source.is_dir():
        raise ConfigError(f"--data {cfg.data}: pseudo queries need a BEIR folder (corpus.jsonl, queries.jsonl, "
                          "qrels/)")
    out = Path(cfg.out)
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise ConfigError(f"--out {out} lies inside the data folder {source}; write pseudo queries to a run folder")
    corpus_path, queries_path = find_beir_file(source, "corpus.jsonl"), find_beir_file(source, "queries.jsonl")
    corpus = load_beir_corpus(corpus_path)
    if not corpus:
        raise DataError("no documents to make queries from", path=corpus_path)
    texts = {doc_id: doc_text(doc) for doc_id, doc in corpus.items()}
    doc_ids = choose_documents(list(corpus), cfg.n, cfg.seed)
    # what can fail on the inputs fails here, before any query is made (an LLM run can take hours)
    if cfg.merge and not (source / "qrels" / f"{cfg.merge}.tsv").is_file():
        splits = sorted(p.stem for p in (source / "qrels").glob("*.tsv"))
        raise DataError(f"no qrels split {cfg.merge!r} to merge with (splits: {', '.join(splits)})",
                        path=source / "qrels" / f"{cfg.merge}.tsv")
    source_queries = load_beir_queries(queries_path)
    clash = next((ID_PREFIX + d for d in doc_ids if ID_PREFIX + d in source_queries), None)
    if clash is not None:
        raise DataError(f"pseudo query id {clash!r} is already a query id of the source", path=queries_path)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.method == "sentence":
        queries, unusable = sentence_queries(texts, doc_ids, seed=cfg.seed, min_words=cfg.min_words,
                                             max_words=cfg.max_words)
    else:
        from negmine.relabel.cache import JudgmentCache

        client = client if client is not None else _chat_client(cfg)
        bar = _progress(len(doc_ids)) if cfg.show_progress_bar else None
        try:
            queries, unusable = llm_queries(texts, doc_ids, client, cache=JudgmentCache(out / GENERATIONS),
                                            max_tokens=cfg.max_tokens, max_passage_words=cfg.max_passage_words,
                                            progress=bar and (lambda done, total: bar.update(done - bar.n)))
        finally:
            if bar is not None:
                bar.close()
    _write_folder(source, out, corpus_path, source_queries, queries, cfg)
    stats = {"method": cfg.method, "documents": len(doc_ids), "queries": len(queries), "unusable": unusable,
             "corpus": len(corpus), "split": cfg.split,
             "merged_split": f"{cfg.merge}+{cfg.split}" if cfg.merge else None,
             "mean_query_words": round(sum(len(q.text.split()) for q in queries) / max(1, len(queries)), 2)}
    write_json(out / "pseudo.json", stats)
    inputs = [corpus_path] + ([source / "qrels" / f"{cfg.merge}.tsv"] if cfg.merge else [])
    extra = {"timings_s": {"total": time.perf_counter() - started}}
    if client is not None:
        extra["generator"] = client.get_config_dict()
    write_manifest(out, "pseudo", cfg.to_dict(), inputs=inputs, seed=cfg.seed, extra=extra)
    return PseudoResult(out, queries, stats)


def _chat_client(cfg: PseudoConfig) -> Any:
    from negmine.relabel.factory import JudgeOptions, load_chat_client

    return load_chat_client(cfg.model or "", JudgeOptions(n_ctx=cfg.n_ctx, n_threads=cfg.n_threads,
                                                          concurrency=cfg.concurrency), what="--model")


def _progress(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Writing queries", unit="doc")


def _write_folder(source: Path, out: Path, corpus_path: Path, source_queries: Mapping[str, str],
                  queries: Sequence[PseudoQuery], cfg: PseudoConfig) -> None:
    """The BEIR folder: corpus linked, queries written (the source's and the pseudo ones), the source's qrels linked,
    the pseudo split (and the merged one) written."""
    from negmine.io import atomic_open

    (out / "qrels").mkdir(parents=True, exist_ok=True)
    _relink(corpus_path.resolve(), out / corpus_path.name)
    with atomic_open(out / "queries.jsonl") as handle:
        for qid, text in source_queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
        for q in queries:
            handle.write(json.dumps({"_id": q.query_id, "text": q.text}, ensure_ascii=False) + "\n")
    for qrels in sorted((source / "qrels").glob("*.tsv")):
        _relink(qrels.resolve(), out / "qrels" / qrels.name)
    rows = [f"{q.query_id}\t{q.doc_id}\t1\n" for q in queries]
    with atomic_open(out / "qrels" / f"{cfg.split}.tsv") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        handle.writelines(rows)
    if cfg.merge:  # make_pseudo_queries checked that the split exists
        lines = (source / "qrels" / f"{cfg.merge}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        with atomic_open(out / "qrels" / f"{cfg.merge}+{cfg.split}.tsv") as handle:
            handle.writelines(lines[:1] + [line if line.endswith("\n") else line + "\n" for line in lines[1:]
                                           if line.strip()])
            handle.writelines(rows)


def _relink(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_symlink() and os.readlink(link) == str(target):
            return
        link.unlink()
    link.symlink_to(target)
