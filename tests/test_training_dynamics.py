"""Training dynamics (issue 20): random negatives (STAR), NGAME batching, re-mining with the student (ANCE/ADORE).

Unit tests use brute-force references; the model tests use the bundled MiniLM and a SciFact sample and are kept to a
few steps.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from negmine.batching import balanced_clusters, ngame_batches
from negmine.data.mined import MinedRecord
from negmine.data.random_negatives import RandomNegatives, add_random_negatives
from negmine.errors import ConfigError, DataError

# --------------------------------------------------------------------------------------------------------------------
# random negatives
# --------------------------------------------------------------------------------------------------------------------


def _corpus():
    ids = [f"d{i}" for i in range(40)]
    texts = [f"text {i}" for i in range(40)]
    texts[7] = texts[3]  # d7 is a copy of the positive d3
    texts[21] = "what is q1"  # a document whose text is the query's
    return ids, texts


def _record(**kw):
    base = dict(query_id="d30", query="what is q1", positive_ids=["d3"], positives=["text 3"], positive_scores=[0.9],
                negative_ids=["d4", "d5"], negatives=["text 4", "text 5"], negative_scores=[0.5, 0.4])
    return MinedRecord(**{**base, **kw})


def test_random_negatives_never_a_positive_a_copy_the_query_or_a_hard_negative():
    ids, texts = _corpus()
    record = _record()
    # brute force: what may be drawn
    allowed = {d for d, t in zip(ids, texts) if t not in {"text 3", "text 4", "text 5", "what is q1"} and d != "d30"}
    seen = set()
    for seed in range(200):
        drawn_ids, drawn_texts = RandomNegatives(ids, texts, k=5, seed=seed).draw(record)
        assert len(drawn_ids) == 5 and len(set(drawn_texts)) == 5
        assert set(drawn_ids) <= allowed, set(drawn_ids) - allowed
        assert [texts[ids.index(d)] for d in drawn_ids] == drawn_texts
        seen |= set(drawn_ids)
    assert seen == allowed  # uniform over what is allowed: every allowed document comes up


def test_random_negatives_are_seeded_per_query():
    ids, texts = _corpus()
    a = RandomNegatives(ids, texts, k=4, seed=1)
    records = [_record(query_id=f"q{i}") for i in range(5)]
    first = [a.draw(r) for r in records]
    assert first == [RandomNegatives(ids, texts, k=4, seed=1).draw(r) for r in reversed(records)][::-1]
    assert first != [RandomNegatives(ids, texts, k=4, seed=2).draw(r) for r in records]
    assert len({tuple(d[0]) for d in first}) > 1  # queries get different draws


def test_random_negatives_cost_is_constant_per_draw():
    """Rejection sampling: the tries per draw do not grow with the corpus (an O(n) scan would be ~n)."""
    for n in (1_000, 200_000):
        ids = [f"d{i}" for i in range(n)]
        sampler = RandomNegatives(ids, ids, k=8, seed=0)
        tries = []
        for q in range(50):
            sampler.draw(_record(query_id=f"q{q}", positive_ids=["d1"], positives=["d1"], negative_ids=["d2"],
                                 negatives=["d2"], negative_scores=[0.1]))
            tries.append(sampler.tries)
        assert max(tries) <= 12, (n, max(tries))


def test_random_negatives_refuse_a_corpus_too_small():
    ids, texts = _corpus()
    with pytest.raises(DataError, match="fewer than 60 documents"):
        RandomNegatives(ids, texts, k=60).draw(_record())
    with pytest.raises(ConfigError):
        RandomNegatives(ids, texts, k=-1)


def test_add_random_negatives_keeps_the_hard_ones_first_and_marks_scores_unknown():
    ids, texts = _corpus()
    out = add_random_negatives([_record(), _record(query_id="q2", negative_ids=["d4"], negatives=["text 4"],
                                                   negative_scores=[0.5])], RandomNegatives(ids, texts, k=3), 1)
    assert out[0].negatives[0] == "text 4" and len(out[0].negatives) == 4
    assert out[0].negative_scores[0] == 0.5 and all(math.isnan(s) for s in out[0].negative_scores[1:])
    assert out[0].has_scores
    unscored = add_random_negatives([_record(positive_scores=[], negative_scores=[])], RandomNegatives(ids, texts, 2))
    assert unscored[0].negative_scores == [] and len(unscored[0].negatives) == 4
    # teacher scores follow the negatives: the hard ones cut to the same count, the random ones unknown
    taught = add_random_negatives([_record(negative_ids=["d4", "d5"], negatives=["text 4", "text 5"],
                                           negative_scores=[0.5, 0.4], positive_teacher_scores=[0.9],
                                           negative_teacher_scores=[0.7, 0.6])], RandomNegatives(ids, texts, k=2), 1)
    assert taught[0].negative_teacher_scores[0] == 0.7 and len(taught[0].negative_teacher_scores) == 3
    assert all(math.isnan(s) for s in taught[0].negative_teacher_scores[1:])
    assert taught[0].positive_teacher_scores == [0.9] and unscored[0].negative_teacher_scores is None


def test_build_dataset_adds_random_negative_columns(tmp_path):
    from negmine.data.mined import write_mined
    from negmine.testing import toy_data
    from negmine.training import TrainConfig, build_dataset

    data = toy_data()
    records = [MinedRecord(q, data.queries[q], data.positives(q), [data.doc_text(d) for d in data.positives(q)], [])
               for q in data.split_query_ids]
    write_mined(tmp_path / "mined.jsonl", records)
    cfg = TrainConfig(data=str(tmp_path / "mined.jsonl"), random_negatives=2, num_negatives=0)
    with pytest.raises(ConfigError, match="needs a corpus"):
        build_dataset(cfg)
    dataset = build_dataset(cfg, corpus=data)
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    for row, record in zip(dataset, records):
        groups = {t for d in record.positive_ids for t in [data.doc_text(d)]}
        assert row["negative_1"] not in groups and row["negative_2"] not in groups


# --------------------------------------------------------------------------------------------------------------------
# NGAME batching
# --------------------------------------------------------------------------------------------------------------------


def _rows(n=60, seed=0):
    rng = np.random.default_rng(seed)
    # a few texts shared between rows (the same anchor split over rows, a passage that is two queries' negative)
    values = [frozenset({f"q{i // 2}", f"p{i}", f"n{rng.integers(12)}"}) for i in range(n)]
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    return values, emb / np.linalg.norm(emb, axis=1, keepdims=True)


@pytest.mark.parametrize("batch_size,cluster_size", [(4, 2), (8, 8), (16, 4), (7, 3)])
def test_ngame_batches_have_no_duplicates_and_cover_every_row_once(batch_size, cluster_size):
    values, emb = _rows()
    clusters = balanced_clusters(emb, cluster_size, seed=0)
    for epoch in range(3):
        batches = ngame_batches(clusters, values, batch_size, seed=epoch)
        assert sorted(i for b in batches for i in b) == list(range(len(values)))
        for batch in batches:
            assert 1 <= len(batch) <= batch_size
            texts = [t for i in batch for t in values[i]]
            assert len(texts) == len(set(texts)), batch


def test_ngame_batches_are_seeded():
    values, emb = _rows()
    clusters = balanced_clusters(emb, 4, seed=3)
    assert [c.tolist() for c in clusters] == [c.tolist() for c in balanced_clusters(emb, 4, seed=3)]
    assert ngame_batches(clusters, values, 8, seed=5) == ngame_batches(clusters, values, 8, seed=5)
    assert ngame_batches(clusters, values, 8, seed=5) != ngame_batches(clusters, values, 8, seed=6)


def test_balanced_clusters_partition_and_group_close_queries():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 16))
    emb = np.repeat(centres, 8, axis=0) + 0.05 * rng.normal(size=(64, 16))
    clusters = balanced_clusters(emb, 8, seed=0)
    assert sorted(i for c in clusters for i in c.tolist()) == list(range(64))
    assert all(len(c) <= 8 for c in clusters)
    # brute force: the 8 true groups are found exactly
    assert sorted(sorted(c.tolist()) for c in clusters) == [list(range(g * 8, g * 8 + 8)) for g in range(8)]


def test_ngame_sampler_batches_are_harder_than_random():
    """In-batch similarity (mean cosine between the batch's anchors) is higher than with a random order."""
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(256, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    values = [frozenset({f"t{i}"}) for i in range(256)]

    def mean_cos(batches):
        return np.mean([(emb[b] @ emb[b].T)[~np.eye(len(b), dtype=bool)].mean() for b in batches if len(b) > 1])

    ngame = ngame_batches(balanced_clusters(emb, 8, seed=0), values, 16, seed=0)
    shuffled = ngame_batches([np.array([i]) for i in range(256)], values, 16, seed=0)
    assert mean_cos(ngame) > mean_cos(shuffled) + 0.1


def test_ngame_sampler_through_the_trainer_hook():
    import functools

    from datasets import Dataset

    from negmine.batching import NgameBatchSampler

    values, emb = _rows(20)
    dataset = Dataset.from_list([{"anchor": f"q{i // 2}", "positive": f"p{i}", "scores": [1.0]} for i in range(20)])
    factory = functools.partial(NgameBatchSampler, embeddings=emb, cluster_size=2)
    sampler = factory(dataset, batch_size=4, drop_last=False, valid_label_columns=["scores"], generator=None, seed=3)
    sampler.set_epoch(1)
    batches = list(sampler)
    assert len(sampler) == len(batches)
    assert sorted(i for b in batches for i in b) == list(range(20))
    assert all(len({dataset[i]["anchor"] for i in b}) == len(b) for b in batches)
    sampler.set_epoch(2)
    assert list(sampler) != batches


# --------------------------------------------------------------------------------------------------------------------
# re-mining with the student
# --------------------------------------------------------------------------------------------------------------------


def test_round_schedule():
    from negmine.dynamic import round_schedule
    from negmine.training import TrainConfig

    assert round_schedule(TrainConfig(epochs=3, remine_every=1)) == [{"epochs": 1.0, "max_steps": -1}] * 3
    assert [r["epochs"] for r in round_schedule(TrainConfig(epochs=2.5, remine_every=2))] == [2.0, 0.5]
    steps = round_schedule(TrainConfig(max_steps=7, remine_every=3, remine_unit="step"))
    assert [r["max_steps"] for r in steps] == [3, 3, 1]
    with pytest.raises(ConfigError, match="needs max_steps"):
        round_schedule(TrainConfig(remine_every=3, remine_unit="step"))
    # steps without max_steps: as many as plain training's epochs take (ceil(epochs x steps per epoch))
    one_epoch = TrainConfig(epochs=1.0, remine_every=10, remine_unit="step")
    assert round_schedule(one_epoch, steps_per_epoch=20) == [{"epochs": 1.0, "max_steps": 10}] * 2
    longer = TrainConfig(epochs=1.5, remine_every=4, remine_unit="step")
    assert [r["max_steps"] for r in round_schedule(longer, steps_per_epoch=7)] == [4, 4, 3]
    capped = TrainConfig(epochs=1.0, max_steps=5, remine_every=4, remine_unit="step")
    assert [r["max_steps"] for r in round_schedule(capped, steps_per_epoch=20)] == [4, 1]  # max_steps wins
    with pytest.raises(ConfigError, match="remine_unit"):
        TrainConfig(remine_every=3, remine_unit="hours")


def test_plain_train_refuses_remining():
    from negmine.training import TrainConfig, train

    with pytest.raises(ConfigError, match="negmine.dynamic"):
        train(TrainConfig(data="x", remine_every=1))


# --------------------------------------------------------------------------------------------------------------------
# real runs: MiniLM on a SciFact sample
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scifact_sample(scifact_dir):
    """40 SciFact training queries and 500 documents (their positives and random others), seeded."""
    from negmine.data import load_data
    from negmine.evaluation import subsample

    return subsample(load_data(scifact_dir, "train"), max_queries=40, max_corpus=500, seed=0)


def _mine_cfg(minilm_path, **kw):
    from negmine.mining.config import MineConfig

    options = dict(retriever=str(minilm_path), data="scifact-sample", out="", num_negatives=2, range_max=20,
                   output_scores=True, show_progress_bar=False, batch_size=64,
                   margin_reference="lowest")  # one negative list per query: the counts below assume it
    return MineConfig(**{**options, **kw})


def _sample_records(data, n=8, negatives=2):
    """``n`` queries of ``data`` with the next documents of the corpus (not positives) as negatives, no scores."""
    ids = list(data.corpus)
    out = []
    for i, q in enumerate(data.split_query_ids[:n]):
        positives = data.positives(q)
        negs = [d for d in ids[i * 7:] if d not in positives][:negatives]
        out.append(MinedRecord(q, data.queries[q], positives, [data.doc_text(d) for d in positives], [], negs,
                               [data.doc_text(d) for d in negs], []))
    return out


def test_adore_trains_the_query_side_only(scifact_sample, minilm_path, tmp_path):
    """ADORE: after training, every document-side weight equals the start model's and the query side has moved."""
    import torch

    from negmine.training import TrainConfig, adore_model, build_dataset, build_trainer, load_model

    cfg = TrainConfig(model=str(minilm_path), out=str(tmp_path), adore=True, max_steps=2, batch_size=4,
                      max_seq_length=64, learning_rate=1e-3, warmup_ratio=0.0, save_steps=0, show_progress_bar=False,
                      logging_steps=1)
    start = load_model(str(minilm_path), 64)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in start]
    reference = start.encode(["a query"])
    trainer = build_trainer(cfg, model=adore_model(start), dataset=build_dataset(cfg, _sample_records(scifact_sample)))
    trainer.train()
    router = next(trainer.model.children())
    document = [m.state_dict() for m in router.sub_modules["document"]]
    query = [m.state_dict() for m in router.sub_modules["query"]]
    assert [d.keys() for d in document] == [b.keys() for b in before] == [q.keys() for q in query]
    assert all(torch.equal(d[k], b[k]) for d, b in zip(document, before) for k in b)
    assert any(not torch.equal(q[k], b[k]) for q, b in zip(query, before) for k in b)
    q_emb = trainer.model.encode_query(["a query"])
    d_emb = trainer.model.encode_document(["a query"])
    assert not np.allclose(q_emb, d_emb, atol=1e-4)
    assert np.allclose(d_emb, reference, atol=1e-5)
    # negmine's encoder (eval, mining) routes queries and documents the same way
    from negmine.encoders.st import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(trainer.model)
    assert np.allclose(encoder.encode_queries(["a query"]), q_emb, atol=1e-5)
    assert np.allclose(encoder.encode_corpus(["a query"]), reference, atol=1e-5)


@pytest.mark.parametrize("adore,teacher", [(False, True), (True, False)])
def test_two_rounds_of_remining_on_a_scifact_sample(scifact_sample, minilm_path, tmp_path, adore, teacher):
    """The CI run of issue 20: 2 rounds (3 steps each) of MiniLM on 40 SciFact queries / 500 documents, re-mined
    with the student between them (with a cross-encoder-free guard: a judge that drops one negative per query),
    plus random negatives and NGAME batches. Re-mined negatives never hold a positive or a copy of one. With a
    teacher (listwise distillation on teacher scores), every re-mined round is scored by it too."""
    import json

    from negmine.dynamic import train_dynamic
    from negmine.mining.api import run_mining
    from negmine.relabel.base import Judgment, Label
    from negmine.training import TrainConfig

    class DropFirstNegative:  # a guard: judges the first negative relevant, so relabel filters it
        name = "drop-first"
        calls = 0

        def judge(self, query, passages, num_positives=1):
            DropFirstNegative.calls += 1
            return [Judgment(Label.POSITIVE if i <= num_positives else Label.NEGATIVE,
                             score=1.0 if i <= num_positives else 0.0, rank=i) for i in range(len(passages))]

        def get_config_dict(self):
            return {"name": self.name}

    mine_cfg = _mine_cfg(minilm_path, num_negatives=3)
    first = run_mining(mine_cfg, data=scifact_sample).records
    distil = dict(loss="listwise", scores="teacher", remine_teacher="hashing") if teacher else {}
    # with a teacher, the steps are plain training's one epoch (no max_steps), re-mined after 3 of them
    length = dict(epochs=1.0, max_steps=-1) if teacher else dict(max_steps=6)
    cfg = TrainConfig(model=str(minilm_path), out=str(tmp_path / "run"), **length, remine_every=3,
                      remine_unit="step", adore=adore, batch_size=8, max_seq_length=64, learning_rate=1e-4,
                      warmup_ratio=0.0, save_steps=0, show_progress_bar=False, logging_steps=1, num_negatives=1,
                      random_negatives=0 if teacher else 1, batch_sampler="ngame", ngame_cluster_size=4, **distil)
    if teacher:  # the first round as `negmine score` would write it
        from negmine.dynamic import round_teacher
        from negmine.scoring import score_records

        found = round_teacher(cfg, scifact_sample)
        first = score_records(first, found.teacher, found.config, found.out)[0]
    result = train_dynamic(cfg, mine_cfg=mine_cfg, data=scifact_sample, judge=DropFirstNegative(), records=first)
    if teacher:  # as many steps as the trainer of plain training counts for one epoch of the first round's data
        from negmine.training import build_dataset, build_trainer

        plain = replace(cfg, remine_every=0, out=str(tmp_path / "plain"))
        expected = len(build_trainer(plain, dataset=build_dataset(plain, first, corpus=scifact_sample))
                       .get_train_dataloader())
        assert 3 < expected <= 6  # 40 queries in batches of 8: two rounds
    else:
        expected = 6
    assert result.steps == expected and len(result.rounds) == 2
    assert [r.steps for r in result.rounds] == [3, expected - 3]
    assert result.rounds[0].remine_seconds > 0 and result.rounds[1].remine_seconds is None
    remined = result.records
    assert DropFirstNegative.calls == len(remined) > 30  # the guard judged every re-mined query
    texts = {d: scifact_sample.doc_text(d) for d in scifact_sample.corpus}
    for record in remined:
        positives = set(scifact_sample.positives(record.query_id))
        assert not positives & set(record.negative_ids)
        assert not {texts[d] for d in positives} & set(record.negatives)
        assert len(record.negatives) == 2  # the guard filtered one of the 3 mined
    assert [r.negative_ids for r in remined] != [r.negative_ids[1:] for r in first]  # the student mined anew
    report = json.loads((tmp_path / "run" / "dynamic.json").read_text())
    assert report["adore"] is adore and len(report["rounds"]) == 2
    assert (tmp_path / "run" / "round-1" / "mined.jsonl").is_file() and (tmp_path / "run" / "final").is_dir()
    parts = report["rounds"][0]["remine_parts"]
    assert {"encode_corpus+index", "encode_queries+search", "mine", "judge", "total"} <= set(parts)
    assert ("teacher" in parts) is teacher
    if teacher:  # every re-mined passage carries the teacher's score (the loss reads them)
        assert all(len(r.positive_teacher_scores) == len(r.positives) and
                   len(r.negative_teacher_scores) == len(r.negatives) for r in remined)


def test_remine_config_comes_from_the_mining_manifest_also_through_relabel(tmp_path):
    from negmine.dynamic import remine_config
    from negmine.io import write_json
    from negmine.training import TrainConfig

    mined = tmp_path / "mine" / "mined.jsonl"
    mined.parent.mkdir()
    mined.write_text("")
    write_json(mined.parent / "manifest.json", {"stage": "mine", "config": {
        "retriever": "minilm", "data": "scifact", "num_negatives": 5, "cross_encoder": "ce-model", "range_max": 30,
        "index_dir": "runs/index", "out": "runs/mine", "no_such_option": 1}})
    relabeled = tmp_path / "relabel" / "mined.jsonl"
    relabeled.parent.mkdir()
    relabeled.write_text("")
    write_json(relabeled.parent / "manifest.json", {"stage": "relabel", "config": {"mode": "both"},
                                                    "inputs": {str(mined): "sha"}})
    for data in (mined, relabeled):
        cfg = remine_config(TrainConfig(data=str(data), remine_every=1, seed=3))
        assert (cfg.num_negatives, cfg.cross_encoder, cfg.range_max, cfg.data) == (5, "ce-model", 30, "scifact")
        assert (cfg.out, cfg.index_dir, cfg.seed) == ("", None, 3)  # in memory, never the start model's index
    with pytest.raises(ConfigError, match="no mining manifest.json"):
        remine_config(TrainConfig(data=str(tmp_path / "elsewhere.jsonl"), remine_every=1))


def test_remine_config_follows_a_score_run_back_to_the_mining(tmp_path):
    from negmine.dynamic import remine_config, score_manifest
    from negmine.io import write_json
    from negmine.training import TrainConfig

    mined = tmp_path / "mine" / "mined.jsonl"
    mined.parent.mkdir()
    mined.write_text("")
    write_json(mined.parent / "manifest.json", {"stage": "mine", "config": {"retriever": "minilm", "data": "scifact",
                                                                          "num_negatives": 7}})
    scored = tmp_path / "score" / "mined.jsonl"
    scored.parent.mkdir()
    scored.write_text("")
    write_json(scored.parent / "manifest.json", {"stage": "score", "config": {"teacher": "embeddinggemma"},
                                                 "inputs": {str(mined): "sha"}})
    assert remine_config(TrainConfig(data=str(scored), remine_every=1)).num_negatives == 7
    assert score_manifest(str(scored))["config"]["teacher"] == "embeddinggemma"
    assert score_manifest(str(mined)) is None and score_manifest(str(tmp_path / "none.jsonl")) is None


def _scored_file(tmp_path, teacher, **config):
    from negmine.io import write_json

    scored = tmp_path / "score" / "mined.jsonl"
    scored.parent.mkdir(exist_ok=True)
    scored.write_text("")
    write_json(scored.parent / "manifest.json", {"stage": "score", "config": {"teacher": teacher, **config}})
    return scored


def test_round_teacher_scores_new_negatives_with_the_teacher_that_scored_the_data(tmp_path):
    """Re-mined rounds of a teacher-scored file get the same teacher's scores (its settings: the guard), read
    through the corpus; a score table cannot score new pairs, so it is refused unless a teacher is named."""
    from negmine.dynamic import round_teacher
    from negmine.encoders import load_encoder
    from negmine.scoring import score_records
    from negmine.testing import toy_data
    from negmine.training import TrainConfig

    data = toy_data()
    assert round_teacher(TrainConfig(data=str(tmp_path / "x.jsonl"), scores="retriever"), data) is None
    scored = _scored_file(tmp_path, "hashing", guard="teacher-above-positive", batch_size=8, not_a_field=1)
    found = round_teacher(TrainConfig(data=str(scored), scores="teacher", out=str(tmp_path / "run")), data)
    assert (found.config.teacher, found.config.guard, found.config.batch_size) == ("hashing", "teacher-above-positive",
                                                                                  8)
    assert found.teacher.corpus_texts == list(dict.fromkeys(data.doc_text(d) for d in data.corpus))
    query_id = data.split_query_ids[0]
    positives = data.positives(query_id)
    others = [d for d in data.corpus if d not in positives][:4]
    record = MinedRecord(query_id, data.queries[query_id], positives, [data.doc_text(d) for d in positives], [],
                         others, [data.doc_text(d) for d in others], [])
    (out,), (raw,), stats = score_records([record], found.teacher, found.config, found.out)
    encoder = load_encoder("hashing")
    q = encoder.encode_queries([record.query])[0]
    want = [float(encoder.encode_corpus([t])[0] @ q) for t in [*record.positives, *record.negatives]]
    assert raw == pytest.approx(want, abs=1e-6)
    lowest = min(want[:len(positives)])
    kept = [d for d, s in zip(others, want[len(positives):]) if s <= lowest]
    assert out.negative_ids == kept and out.positive_teacher_scores == pytest.approx(want[:len(positives)], abs=1e-6)
    assert stats["removed_by_guard"] == len(others) - len(kept)

    replayed = _scored_file(tmp_path, "scores:runs/x/teacher_scores.jsonl")
    with pytest.raises(ConfigError, match="scored from a table .*set remine_teacher"):
        round_teacher(TrainConfig(data=str(replayed), scores="teacher"), data)
    named = round_teacher(TrainConfig(data=str(replayed), scores="teacher", remine_teacher="hashing"), data)
    assert named.config.teacher == "hashing"
    with pytest.raises(ConfigError, match="no negmine score run wrote it"):
        round_teacher(TrainConfig(data=str(tmp_path / "plain.jsonl"), scores="teacher"), data)


# --------------------------------------------------------------------------------------------------------------------
# the mining manifest names data that later stages can reload
# --------------------------------------------------------------------------------------------------------------------


def test_random_negatives_and_remining_reload_the_data_a_mining_run_was_given(tmp_path):
    """Data loaded from a folder and handed to ``mine_hard_negatives`` in memory is recorded as that folder and
    split, so random negatives and re-mining reload it; data built in memory is named as such, and both stages ask
    for the option that replaces it instead of failing on a folder named 'RetrievalData'."""
    from negmine.data import load_data
    from negmine.dynamic import _load_data, remine_config
    from negmine.encoders import HashingEncoder
    from negmine.mining import mine_hard_negatives
    from negmine.testing import toy_data, write_toy_beir
    from negmine.training import TrainConfig, random_negatives_corpus

    folder = write_toy_beir(tmp_path / "toy", split="train-minus-dev")
    data = load_data(folder, "train-minus-dev")
    options = dict(num_negatives=2, range_max=10, no_cache=True, show_progress_bar=False)
    mine_hard_negatives(data, HashingEncoder(), out=str(tmp_path / "mine"), **options)
    config = json.loads((tmp_path / "mine" / "manifest.json").read_text())["config"]
    assert (config["data"], config["split"]) == (str(folder.absolute()), "train-minus-dev")
    cfg = TrainConfig(data=str(tmp_path / "mine" / "mined.jsonl"), random_negatives=1)
    assert dict(random_negatives_corpus(cfg).corpus) == dict(data.corpus)
    remined = _load_data(remine_config(cfg))
    assert remined.split == "train-minus-dev" and remined.qrels == data.qrels

    mine_hard_negatives(toy_data(), HashingEncoder(), out=str(tmp_path / "memory"), **options)
    config = json.loads((tmp_path / "memory" / "manifest.json").read_text())["config"]
    assert config["data"] == "<in memory: RetrievalData>"
    cfg = TrainConfig(data=str(tmp_path / "memory" / "mined.jsonl"), random_negatives=1)
    with pytest.raises(ConfigError, match=r"in memory .*pass corpus \(--corpus\)"):
        random_negatives_corpus(cfg)
    with pytest.raises(ConfigError, match="pass the data to train_dynamic"):
        _load_data(remine_config(cfg))
    named = write_toy_beir(tmp_path / "named")  # --corpus: a BEIR folder's corpus
    assert dict(random_negatives_corpus(replace(cfg, corpus=str(named))).corpus) == dict(data.corpus)
