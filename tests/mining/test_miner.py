import json
import sys
from pathlib import Path

import numpy as np
import pytest

from negmine.testing import TableEncoder

sys.path.insert(0, str(Path(__file__).parent))
from reference import reference_mine  # noqa: E402

from negmine.data import RetrievalData  # noqa: E402
from negmine.encoders import HashingEncoder  # noqa: E402
from negmine.errors import ConfigError  # noqa: E402
from negmine.mining import MineConfig, mine_hard_negatives, read_mined  # noqa: E402

FixedEncoder = TableEncoder  # precomputed vectors keyed by text: lets tests control every score


def random_world(seed=0, n_docs=300, n_queries=40, dim=16):
    rng = np.random.default_rng(seed)
    corpus = {f"d{i}": {"title": "", "text": f"document {i}"} for i in range(n_docs)}
    corpus["d7"]["text"] = corpus["d3"]["text"]  # an exact text copy of a document
    queries = {f"q{i}": f"query {i}" for i in range(n_queries)}
    queries["d11"] = "query that shares an id with a document"  # ArguAna-style
    qrels = {}
    for qid in queries:
        k = int(rng.integers(1, 4))
        qrels[qid] = {f"d{j}": 1 for j in rng.choice(n_docs, size=k, replace=False)}
    qrels["q0"] = {"d3": 1}
    vecs = rng.standard_normal((n_docs + len(queries), dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    table = {}
    for i, d in enumerate(corpus):
        table.setdefault(corpus[d]["text"], vecs[i])
    for i, q in enumerate(queries):
        # queries near their first positive so margins matter
        first = next(iter(qrels[q]))
        v = vecs[n_docs + i] * 0.6 + table[corpus[first]["text"]]
        table[queries[q]] = v / np.linalg.norm(v)
    data = RetrievalData(corpus, queries, qrels, name="random", split="train")
    return data, FixedEncoder(table)


STRATEGIES = [
    dict(strategy="range"),
    dict(strategy="range", range_min=5, range_max=30),
    dict(strategy="abs", max_score=0.3),
    dict(strategy="abs", max_score=0.5, min_score=0.0),
    dict(strategy="margin-pos", margin=0.05),
    dict(strategy="perc-pos", percentage=0.95),
    dict(strategy="perc-pos,abs", percentage=0.9, max_score=0.4),
]


def mined_lists(records, margin_reference):
    """The miner's output keyed like the reference: per query, or per (query, positive id) for ``each``."""
    if margin_reference != "each":
        return {r.query_id: r.negative_ids for r in records}
    return {
        (r.query_id, p): [r.negative_ids[i] for i in r.negatives_of(k)]
        for r in records
        for k, p in enumerate(r.positive_ids)
    }


@pytest.mark.parametrize("reference", ["each", "lowest", "highest"])
@pytest.mark.parametrize("index", ["faiss", "exact"])
@pytest.mark.parametrize("options", STRATEGIES)
def test_matches_loop_reference(options, index, reference):
    data, enc = random_world()
    opts = {"range_min": 0, "range_max": 40, "num_negatives": 5, **options}
    result = mine_hard_negatives(
        data,
        enc,
        too_few="keep",
        format="triplet",
        index=index,
        margin_reference=reference,
        block_candidates=500,  # several blocks
        no_cache=True,
        show_progress_bar=False,
        **opts,
    )
    query_ids = data.split_query_ids
    doc_ids = list(data.corpus)
    texts = [data.doc_text(d) for d in doc_ids]
    q_emb, d_emb = enc.encode_queries([data.queries[q] for q in query_ids]), enc.encode_corpus(texts)
    kw = {
        k: v
        for k, v in opts.items()
        if k in ("range_min", "range_max", "num_negatives", "max_score", "min_score", "margin", "percentage")
    }
    if "margin-pos" not in options["strategy"]:
        kw.pop("margin", None)
    if "perc-pos" not in options["strategy"]:
        kw.pop("percentage", None)
    expected = reference_mine(data, doc_ids, q_emb, d_emb, query_ids, margin_reference=reference, **kw)
    assert mined_lists(result.records, reference) == expected
    assert result.stats.blocks > 1


def test_exclusions_positive_self_and_equal_text():
    data, enc = random_world()
    result = mine_hard_negatives(
        data,
        enc,
        strategy="range",
        range_max=300,
        num_negatives=250,
        too_few="keep",
        format="triplet",
        no_cache=True,
        show_progress_bar=False,
    )
    for r in result.records:
        positives = set(data.positives(r.query_id))
        assert positives.isdisjoint(r.negative_ids)
        assert r.query_id not in r.negative_ids
        assert {data.doc_text(p) for p in positives}.isdisjoint(r.negatives)
    q0 = next(r for r in result.records if r.query_id == "q0")
    assert "d7" not in q0.negative_ids  # same text as the positive d3
    ex = result.stats.excluded
    assert ex["query_itself"] >= 1 and ex["equal_text_to_positive"] >= 1


def test_stats_add_up():
    data, enc = random_world()
    result = mine_hard_negatives(
        data,
        enc,
        strategy="perc-pos,abs",
        max_score=0.4,
        range_max=40,
        num_negatives=5,
        too_few="drop",
        no_cache=True,
        show_progress_bar=False,
    )
    s = result.stats.to_dict()
    c = s["candidates"]
    assert c["retrieved"] == c["padding"] + sum(c["excluded"].values()) + sum(c["filtered"].values()) + c["eligible"]
    q = s["queries"]
    assert q["total"] == q["enough_negatives"] + q["too_few"] and q["written"] == len(result.records)
    assert s["negatives"]["selected"] == sum(len(r.negative_ids) for r in result.records)
    p = s["pairs"]
    assert p["total"] == p["enough_negatives"] + sum(p["too_few_by_policy"].values())
    assert p["total"] == sum(len(data.positives(q)) for q in data.split_query_ids)
    rows = [len(r.negatives_of(k)) for r in result.records for k in range(len(r.positives)) if r.has_row(k)]
    assert s["rows"] == p["written"] == len(rows) and set(rows) == {5}


@pytest.mark.parametrize("policy", ["drop", "keep", "pad"])
def test_too_few_policies(policy):
    data, enc = random_world()
    result = mine_hard_negatives(
        data,
        enc,
        strategy="abs",
        max_score=0.05,
        range_max=40,
        num_negatives=8,
        too_few=policy,
        format="triplet",
        no_cache=True,
        show_progress_bar=False,
    )
    short = result.stats.too_few
    assert sum(short.values()) > 0 and set(short) == {
        {"drop": "dropped", "keep": "kept_fewer", "pad": "padded"}[policy]
    }
    lengths = [len(r.negative_ids) for r in result.records]
    if policy == "drop":
        assert all(n == 8 for n in lengths) and len(result.records) < len(data.split_query_ids)
    elif policy == "keep":
        assert min(lengths) < 8 and len(result.records) == len(data.split_query_ids)
    else:
        assert all(n == 8 for n in lengths) and result.stats.pad_negatives > 0
        for r in result.records:
            assert set(data.positives(r.query_id)).isdisjoint(r.negative_ids) and len(set(r.negative_ids)) == 8


@pytest.mark.parametrize("sampling", ["random", "softmax"])
def test_seeded_sampling_is_byte_identical(tmp_path, sampling):
    data, enc = random_world()
    outs = []
    for run, seed in enumerate((3, 3, 4)):
        out = tmp_path / f"run{run}"
        mine_hard_negatives(
            data,
            enc,
            out=str(out),
            sampling=sampling,
            seed=seed,
            strategy="range",
            range_max=40,
            num_negatives=5,
            no_cache=True,
            show_progress_bar=False,
        )
        outs.append((out / "mined.jsonl").read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]
    for r in read_mined(tmp_path / "run0"):
        assert r.negative_scores == sorted(r.negative_scores, reverse=True)


def test_softmax_prefers_high_scores():
    data, enc = random_world()
    kw = dict(strategy="range", range_max=60, num_negatives=3, no_cache=True, show_progress_bar=False)
    cold = mine_hard_negatives(data, enc, sampling="softmax", temperature=0.01, **kw)
    hot = mine_hard_negatives(data, enc, sampling="softmax", temperature=100.0, **kw)
    top = mine_hard_negatives(data, enc, sampling="top", **kw)
    mean = lambda res: np.mean([s for r in res.records for s in r.negative_scores])  # noqa: E731
    assert mean(hot) < mean(cold) <= mean(top) + 1e-6


def test_near_duplicate_filter():
    data, enc = random_world()
    base = mine_hard_negatives(
        data, enc, strategy="range", range_max=40, num_negatives=5, no_cache=True, show_progress_bar=False
    )
    strict = mine_hard_negatives(
        data,
        enc,
        strategy="range",
        range_max=40,
        num_negatives=5,
        near_duplicate=0.2,
        no_cache=True,
        show_progress_bar=False,
    )
    assert strict.stats.filtered["near_duplicate"] > 0 and "near_duplicate" not in base.stats.filtered


def test_outputs_manifest_stats_and_plot(tmp_path, toy):
    result = mine_hard_negatives(
        toy,
        HashingEncoder(),
        out=str(tmp_path),
        num_negatives=2,
        range_max=10,
        output_scores=True,
        no_cache=True,
        show_progress_bar=False,
    )
    assert {p.name for p in tmp_path.iterdir()} == {
        "mined.jsonl",
        "n-tuple.jsonl",
        "stats.json",
        "manifest.json",
        "scores.png",
    }
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["stage"] == "mine" and manifest["seed"] == 0 and "numpy" in manifest["versions"]
    assert manifest["config"]["num_negatives"] == 2
    rows = [json.loads(line) for line in (tmp_path / "n-tuple.jsonl").read_text().splitlines()]
    assert list(rows[0]) == ["anchor", "positive", "negative_1", "negative_2", "scores"]
    assert len(rows) == result.stats.rows == 7  # q5 has two positives
    assert (tmp_path / "scores.png").read_bytes()[:4] == b"\x89PNG"


def test_formats(toy):
    result = mine_hard_negatives(
        toy, HashingEncoder(), num_negatives=2, range_max=10, no_cache=True, show_progress_bar=False
    )
    assert len(result.rows("triplet")) == 14 and set(result.rows("triplet")[0]) == {"anchor", "positive", "negative"}
    assert result.rows("labeled-pair")[0]["label"] == 1 and len(result.rows("labeled-pair")) == 21
    assert result.rows("labeled-list")[0]["labels"] == [1, 0, 0]
    flag = result.rows("flag")
    assert len(flag) == 6 and set(flag[0]) == {"query", "pos", "neg", "pos_scores", "neg_scores"}
    ds = result.to_dataset("n-tuple")
    assert ds.column_names == ["anchor", "positive", "negative_1", "negative_2"]


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(sampling="best"), "sampling 'best' is not one of"),
        (dict(format="ntuple"), "Did you mean 'n-tuple'"),
        (dict(strategy="perc_pos"), "Did you mean 'perc-pos'"),
        (dict(num_negatives=60, range_max=50), "cannot be mined from the rank range"),
        (dict(too_few="keep"), "n-tuple' needs exactly num_negatives"),
        (dict(strategy="abs"), "needs max_score and/or min_score"),
        (dict(percentage=1.5), r"percentage must be in \(0, 1\]"),
        (dict(range_min=10, range_max=5), "range_max must be greater than range_min"),
        (dict(unknown_qrels="ignore"), "unknown_qrels 'ignore' is not one of error, skip, keep"),
        (dict(on_invalid="skp"), "Did you mean 'skip'"),
    ],
)
def test_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        MineConfig(**options)


def test_read_mined_errors(tmp_path):
    path = tmp_path / "mined.jsonl"
    valid = {"query_id": "q", "query": "x", "positive_ids": ["1"], "positives": ["p"], "positive_scores": [],
             "negative_ids": [], "negatives": [], "negative_scores": []}
    path.write_text(json.dumps(valid) + '\n{"query_id": "q"}\n')
    from negmine.errors import DataError

    with pytest.raises(DataError, match=r"mined.jsonl, line 2, field 'query'"):
        read_mined(path)
