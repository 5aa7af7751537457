"""ARHN-style relabeling of mined SciFact train negatives with Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF).

What it measures (ARHN, Choi et al. 2026, reports 1.6 relabeled and 2.2 filtered per 10 hard negatives with
Qwen3-32B and E5-base negatives on its training data):

- relabeled and filtered per 10 mined negatives, the unsure rate;
- stage-1 (answer snippet) and stage-2 (listwise ranking) pairs per second on this machine;
- 20 randomly chosen decisions with their passages, written for a human spot check.

Usage (from the repository root)::

    MODELS=~/.cache/negmine-models ../shared/models/fetch_models.sh qwen15
    python benchmarks/relabel_scifact.py                      # mines SciFact train with MiniLM first if needed
    python benchmarks/relabel_scifact.py --mined runs/scifact/mined.jsonl --queries 100
    python benchmarks/relabel_scifact.py --server http://127.0.0.1:8000/v1@qwen   # any OpenAI-compatible server
    python benchmarks/relabel_scifact.py --passages full --queries 20       # whole abstracts, n_ctx 32768
    python benchmarks/relabel_scifact.py --passages context --queries 20    # the most words n_ctx holds

Passages: ``truncated`` (the first report's cut: 120 words in stage 1, 50 per passage in stage 2), ``context`` (a
budget derived from the model's context: what is left of ``--n-ctx`` after the prompt, the generation budget and, in
stage 2, a window of passages with their snippets, divided by the tokens per word measured with the model's own
tokenizer on these passages) or ``full`` (no cut; ``--n-ctx`` raised to 32768 unless given). The budget and the share
of passages it cuts are reported; each mode writes its own report (``relabel_scifact.md``,
``relabel_scifact_context.md``, ``relabel_scifact_full.md``) so the runs sit side by side.

The run is resumable: every model answer goes to ``OUT/cache.jsonl``; rerunning continues where it stopped. The
report is rewritten after every chunk of queries, so a partial run still leaves its measured numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402

from negmine.data.mined import read_mined
from negmine.relabel.api import RelabelSummary, first_choice_slots, ranking_diagnostics, relabel_records
from negmine.relabel.cache import JudgmentCache
from negmine.relabel.llm import ARHNJudge
from negmine.relabel.prompts import PROMPT_VERSION

#### constants
REPO = Path(__file__).resolve().parents[1]
MODELS = Path(os.environ.get("NEGMINE_MODELS", Path.home() / ".cache" / "negmine-models")).expanduser()
GGUF = MODELS / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
SCIFACT = REPO.parent / "shared" / "data" / "beir" / "scifact"
RESULTS = REPO / "benchmarks" / "results"
N_QUERIES = 100
N_NEGATIVES = 5  # mined negatives per query (after the positives)
STAGE1_WORDS = 120  # passage words shown in a stage-1 prompt
STAGE2_WORDS = 50  # passage words shown per passage in a stage-2 prompt (the snippet is shown in full)
SNIPPET_MAX_TOKENS = 48
WINDOW = 20  # passages per stage-2 prompt (the judge's default, RankGPT's)
RANK_MAX_TOKENS = 60
PROMPT_OVERHEAD_TOKENS = 400  # instructions + query + chat template, per prompt (generous: a claim is < 80 tokens)
FALLBACK_TOKENS_PER_WORD = 1.6  # used only when the model's tokenizer is not reachable (a server): reported
FULL_N_CTX = 32768  # Qwen2.5's native context
CHUNK = 4  # queries per chunk (report rewritten after each)
SEED = 0
PAPER = {"relabeled_per_10": 1.6, "filtered_per_10": 2.2}


def mine_scifact(out_dir: Path) -> Path:
    """Mine SciFact train hard negatives with the bundled all-MiniLM-L6-v2 (ranks 0-30, top-5 after the positives);
    a stage of :class:`negmine.pipeline.Pipeline` (skipped when done, embeddings resumed from the cache)."""
    from negmine.mining import mine_hard_negatives
    from negmine.pipeline import Pipeline

    def run(out: Path) -> dict:
        result = mine_hard_negatives(str(SCIFACT), "minilm", split="train", num_negatives=N_NEGATIVES, range_max=30,
                                     seed=SEED, out=str(out), show_progress_bar=True)
        return {"queries": len(result.records)}

    Pipeline(on_event=lambda e: print(f"[{e['status']}] {e['step']}: {e['path']}", flush=True)).run(
        "mine scifact train", out_dir, run, config={"retriever": "minilm", "range_max": 30,
                                                    "num_negatives": N_NEGATIVES})
    return out_dir / "mined.jsonl"


def passage_budget(mode: str, n_ctx: int, tokens_per_word: float) -> dict:
    """Words per passage in stage-1 and stage-2 prompts for a ``--passages`` mode (``None``: no cut)."""
    if mode == "truncated":
        return {"stage1_words": STAGE1_WORDS, "stage2_words": STAGE2_WORDS}
    if mode == "full":
        return {"stage1_words": None, "stage2_words": None}
    stage1_tokens = n_ctx - PROMPT_OVERHEAD_TOKENS - SNIPPET_MAX_TOKENS
    stage2_tokens = (n_ctx - PROMPT_OVERHEAD_TOKENS - RANK_MAX_TOKENS) / WINDOW - SNIPPET_MAX_TOKENS - 10
    if stage2_tokens < 20:
        raise SystemExit(f"--n-ctx {n_ctx} leaves {stage2_tokens:.0f} tokens per stage-2 passage; raise it")
    return {"stage1_words": int(stage1_tokens / tokens_per_word), "stage2_words": int(stage2_tokens / tokens_per_word)}


def tokens_per_word(client, records: list[dict]) -> tuple[float, str]:
    """Tokens per word of these passages with the model's own tokenizer (llama.cpp in process), else the fallback."""
    llm = getattr(client, "_llm", None)
    texts = [t for r in records for t in (*r["positives"], *r["negatives"])]
    if llm is None or not texts:
        return FALLBACK_TOKENS_PER_WORD, "assumed (no local tokenizer)"
    tokens = sum(len(llm.tokenize(t.encode("utf-8"), add_bos=False)) for t in texts)
    words = sum(len(t.split()) for t in texts)
    return tokens / max(1, words), f"measured on {len(texts)} passages with the judge's tokenizer"


def cut_share(records: list[dict], words: int | None) -> float:
    """Share of the judged passages longer than ``words``."""
    lengths = [len(t.split()) for r in records for t in (*r["positives"], *r["negatives"])]
    return 0.0 if words is None or not lengths else sum(n > words for n in lengths) / len(lengths)


def pick_records(mined: Path, n: int, seed: int) -> list[dict]:
    records = [r.to_dict() for r in read_mined(mined, require_scores=True) if r.negatives]
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(records)), min(n, len(records))))
    out = []
    for i in chosen:
        out.append(first_negatives(records[i], N_NEGATIVES))
    return out


def first_negatives(record: dict, n: int) -> dict:
    """A mined record cut to its first ``n`` negatives: every per-negative list, and the per-positive negative
    lists (``positive_negatives``, indices into the negatives) without the indices cut away."""
    r = dict(record)
    for key, value in record.items():
        if key.startswith("negative") and isinstance(value, list):
            r[key] = value[:n]
    if r.get("positive_negatives") is not None:
        r["positive_negatives"] = [None if negs is None else [i for i in negs if i < n]
                                   for negs in r["positive_negatives"]]
    return r


def merge(total: RelabelSummary, part: RelabelSummary) -> None:
    for name in ("queries", "positives_in", "negatives_in", "relabeled", "filtered", "unsure", "unsure_dropped",
                 "kept"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.wall_seconds += part.wall_seconds
    total.usage = part.usage  # the judge's counters are cumulative already


def write_report(out: Path, summary: RelabelSummary, rows: list[dict], records: dict, config: dict,
                 target: int) -> dict:
    name = config.get("report_name", "relabel_scifact")
    s = summary.to_dict()
    u = s["usage"]
    stage1_pairs = u.get("stage1_calls", 0)
    stage2_pairs = u.get("stage2_pairs", 0) - u.get("stage2_cached_pairs", 0)
    status = {k: int(u.get(f"stage1_{k}", 0)) for k in ("verified", "no_answer", "unverified", "unparseable")}
    n_pairs = max(1, sum(status.values()))
    partial = s["queries"] < target
    # what a judge that ranks at random would relabel: the best of k positives among k + m candidates has, on
    # average, m / (k + 1) negatives above it
    done = [records[qid] for qid in dict.fromkeys(r["query_id"] for r in rows)]
    random_relabeled = sum(len(r["negatives"]) / (len(r["positives"]) + 1) for r in done)
    random_per_10 = 10 * random_relabeled / max(1, s["negatives_in"])
    positive_first = ranking_diagnostics(rows)["positive_ranked_first"] or 0.0  # the library's summary.json figure
    slots = first_choice_slots(rows)
    slot_text = ", ".join(f"slot {slot}: {n / max(1, sum(slots.values())):.0%}" for slot, n in slots.most_common(4))
    lines = [
        "# ARHN-style relabeling of mined SciFact train negatives",
        "",
        f"Judge: Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF ({config['backend']}), prompts `{PROMPT_VERSION}` "
        "(ARHN-style, not the paper's text). Negatives: SciFact train, mined with all-MiniLM-L6-v2 by "
        f"`negmine mine` (ranks 0-30, top {N_NEGATIVES}). {_budget_text(config)} Mode `both`, unsure negatives "
        "dropped.",
        "",
        f"1-minute load average {config['load_start']:.1f} at the start of this invocation, "
        f"{config['load_end']:.1f} at this report; llama.cpp threads = {config.get('n_threads')}.",
        "",
        ("**Partial run**: " if partial else "") + f"{s['queries']} of {target} queries done "
        f"({s['negatives_in']} negatives, {s['positives_in']} positives).",
        "",
        "| metric | this run | ARHN paper (Qwen3-32B) |",
        "|---|---|---|",
        f"| relabeled per 10 negatives | {s['relabeled_per_10_negatives']:.2f} | {PAPER['relabeled_per_10']} |",
        f"| filtered per 10 negatives | {s['filtered_per_10_negatives']:.2f} | {PAPER['filtered_per_10']} |",
        f"| relabeled per 10 negatives if the ranking were random | {random_per_10:.2f} | - |",
        f"| queries whose original positive is ranked first | {positive_first:.2f} | - |",
        f"| stage-2 first choice by presentation slot (positives first, then negatives in teacher order) | "
        f"{slot_text} | - |",
        f"| unsure rate (negatives) | {s['unsure_rate']:.3f} | - |",
        f"| stage-1 outputs: verified / NO_ANSWER / unverified / unparseable | "
        f"{status['verified'] / n_pairs:.2f} / {status['no_answer'] / n_pairs:.2f} / "
        f"{status['unverified'] / n_pairs:.2f} / {status['unparseable'] / n_pairs:.2f} | - |",
        f"| stage-2 windows repaired / unparseable | {int(u.get('stage2_repaired', 0))} / "
        f"{int(u.get('stage2_unparseable', 0))} of {int(u.get('stage2_calls', 0))} | - |",
        f"| stage-1 pairs/s | {stage1_pairs / u['stage1_seconds'] if u.get('stage1_seconds') else 0:.3f} | - |",
        f"| stage-2 pairs/s | {stage2_pairs / u['stage2_seconds'] if u.get('stage2_seconds') else 0:.3f} | - |",
        f"| prompt / completion tokens | {s['prompt_tokens']} / {s['completion_tokens']} | - |",
        f"| wall time of the last invocation (s; a rerun resumes from the cache) | {s['wall_seconds']:.0f} | - |",
        "",
        f"Counts: relabeled {s['relabeled']}, filtered {s['filtered']}, unsure {s['unsure']}, kept {s['kept']}.",
        "",
        f"Spot check: `{name}_spotcheck.md` (20 random decisions with their passages).",
        "",
    ]
    Report(name, "benchmarks/relabel_scifact.py", config.get("argv", []), out=out / f"{name}.md").write(
        "\n".join(lines), {"summary": s, "config": config, "random_relabeled_per_10": random_per_10,
                           "positive_ranked_first": positive_first, "first_choice_slots": dict(slots),
                           "stage1_status": status, "partial": partial, "target_queries": target}, echo=False)
    (out / f"{name}_summary.json").write_text(json.dumps({**s, "config": config}, indent=2) + "\n")
    write_spotcheck(out / f"{name}_spotcheck.md", rows, records, config.get("argv", []))
    return s


def _budget_text(config: dict) -> str:
    budget = config.get("budget") or {"stage1_words": STAGE1_WORDS, "stage2_words": STAGE2_WORDS}
    if budget["stage1_words"] is None:
        return f"Passages shown in full (n_ctx {config.get('n_ctx')})."
    text = (f"Passages cut to {budget['stage1_words']} words in stage 1 and {budget['stage2_words']} words per "
            "passage (plus the snippet) in stage 2")
    if config.get("passages") == "context":
        text += (f", the budget left by n_ctx {config.get('n_ctx')} at {config['tokens_per_word']:.2f} tokens per "
                 f"word ({config['tokens_per_word_source']})")
    if "cut_stage1" in config:
        text += (f"; {config['cut_stage1']:.0%} of the judged passages are longer than the stage-1 cut and "
                 f"{config['cut_stage2']:.0%} longer than the stage-2 cut (median {config['median_words']:.0f} words)")
    return text + "."


def report_only(args: argparse.Namespace, records: list[dict]) -> None:
    """Rewrite the report from a finished run's judgments.jsonl and summary json, without loading the judge."""
    name = getattr(args, "report_name", "relabel_scifact")
    saved = json.loads((args.results / f"{name}_summary.json").read_text())
    rows = [json.loads(line) for line in (args.out / "judgments.jsonl").read_text().splitlines() if line.strip()]
    summary = RelabelSummary(**{f.name: saved[f.name] for f in dataclasses.fields(RelabelSummary)})
    config = saved.get("config") or {"backend": "llama-cpp-python in-process", "n_threads": args.threads}
    write_report(args.results, summary, rows, {r["query_id"]: r for r in records}, config, len(records))


def write_spotcheck(path: Path, rows: list[dict], records: dict, argv: list[str] | None = None, n: int = 20) -> None:
    negatives = [r for r in rows if r["role"] == "negative"]
    rng = random.Random(SEED)
    picked = sorted(rng.sample(range(len(negatives)), min(n, len(negatives))))
    lines = ["# Spot check: 20 random ARHN-style decisions on SciFact train negatives", "",
             "For each: the query, the original positive, the judged passage, the stage-1 snippet, the stage-2 rank "
             "and the decision. Judge for yourself whether the decision is right.", ""]
    for k, i in enumerate(picked, start=1):
        row = negatives[i]
        record = records[row["query_id"]]
        passage = record["negatives"][record["negative_ids"].index(row["passage_id"])]
        lines += [
            f"## {k}. query {row['query_id']}, passage {row['passage_id']}: **{row['decision']}**", "",
            f"- Query: {record['query']}",
            f"- Original positive ({record['positive_ids'][0]}): {' '.join(record['positives'][0].split()[:80])} ...",
            f"- Passage: {' '.join(passage.split()[:120])}{' ...' if len(passage.split()) > 120 else ''}",
            f"- Snippet: {row['answer']!r} ({row['answer_status']})",
            f"- Rank {row['rank']} (original positive at {row['positive_rank']}); reason: {row['reason']}",
            "",
        ]
    Report(path.stem, "benchmarks/relabel_scifact.py", argv or [], out=path).write(
        "\n".join(lines), {"picked": [negatives[i] for i in picked]}, echo=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mined", type=Path, help="mined.jsonl (default: mine SciFact train with MiniLM)")
    parser.add_argument("--queries", type=int, default=N_QUERIES)
    parser.add_argument("--server", help="URL@MODEL of an OpenAI-compatible server instead of in-process llama.cpp")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passages", choices=("truncated", "context", "full"), default="truncated",
                        help="passage cut in prompts (see the module docstring)")
    parser.add_argument("--n-ctx", type=int, default=None, help=f"context length (default 4096; full: {FULL_N_CTX})")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "relabel_scifact")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from --out's judgments.jsonl and --results' summary json")
    args = parser.parse_args()
    args.report_name = "relabel_scifact" + ("" if args.passages == "truncated" else f"_{args.passages}")
    if args.passages != "truncated" and args.out == parser.get_default("out"):
        args.out = args.out.with_name(f"relabel_scifact_{args.passages}")
    n_ctx = args.n_ctx or (FULL_N_CTX if args.passages == "full" else 4096)

    #### 1. mined negatives
    mined = args.mined or args.out / "mined" / "mined.jsonl"
    if not mined.exists():
        mined = mine_scifact(mined.parent)
    records = pick_records(mined, args.queries, SEED)
    print(f"{len(records)} queries, {sum(len(r['negatives']) for r in records)} negatives from {mined}")
    if args.report_only:
        report_only(args, records)
        print((args.results / f"{args.report_name}.md").read_text())
        return

    #### 2. the judge (answers cached: rerun to resume)
    if args.server:
        from negmine.relabel.clients import OpenAIChatClient

        url, _, model = args.server.partition("@")
        client, config = OpenAIChatClient(url, model or "qwen", concurrency=2), {"backend": f"server {url}"}
    else:
        from negmine.relabel.clients import LlamaCppChatClient

        client = LlamaCppChatClient(GGUF, n_ctx=n_ctx, n_threads=args.threads)
        config = {"backend": "llama-cpp-python in-process", "n_threads": args.threads}
    config["load_start"] = os.getloadavg()[0]
    tpw, tpw_source = tokens_per_word(client, records)
    budget = passage_budget(args.passages, n_ctx, tpw)
    lengths = [len(t.split()) for r in records for t in (*r["positives"], *r["negatives"])]
    config.update({"passages": args.passages, "n_ctx": n_ctx, "budget": budget, "tokens_per_word": tpw,
                   "tokens_per_word_source": tpw_source, "cut_stage1": cut_share(records, budget["stage1_words"]),
                   "cut_stage2": cut_share(records, budget["stage2_words"]),
                   "median_words": statistics.median(lengths) if lengths else 0, "report_name": args.report_name,
                   "argv": sys.argv[1:]})
    args.out.mkdir(parents=True, exist_ok=True)
    judge = ARHNJudge(client, cache=JudgmentCache(args.out / "cache.jsonl"), max_passage_words=budget["stage1_words"],
                      rank_max_passage_words=budget["stage2_words"], snippet_max_tokens=SNIPPET_MAX_TOKENS,
                      rank_max_tokens=RANK_MAX_TOKENS, window=WINDOW)

    #### 3. relabel chunk by chunk, rewriting the report after each chunk
    args.results.mkdir(parents=True, exist_ok=True)
    total, rows, out_records = RelabelSummary(), [], []
    by_id = {r["query_id"]: r for r in records}
    for start in range(0, len(records), CHUNK):
        t = time.perf_counter()
        part_records, part_rows, part = relabel_records(records[start:start + CHUNK], judge, mode="both",
                                                        on_unsure="drop", chunk_size=CHUNK)
        merge(total, part)
        rows += part_rows
        out_records += part_records
        config["load_end"] = os.getloadavg()[0]
        s = write_report(args.results, total, rows, by_id, config, len(records))
        print(f"[{total.queries}/{len(records)}] {time.perf_counter() - t:.0f}s "
              f"relabeled/10={s['relabeled_per_10_negatives']} filtered/10={s['filtered_per_10_negatives']} "
              f"unsure={s['unsure_rate']}", flush=True)
        with open(args.out / "judgments.jsonl", "w") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        with open(args.out / "relabeled.jsonl", "w") as handle:
            handle.writelines(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in out_records)
    print((args.results / f"{args.report_name}.md").read_text())


if __name__ == "__main__":
    main()
