"""negmine.training: rows from mined files, loss construction, config checks, a real 2-step trainer run per loss."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from negmine.data.mined import build_rows, read_records
from negmine.errors import ConfigError, DataError
from negmine.training import TrainConfig, build_loss, num_positive_columns, train


def _mined(query_id, query, positives, negatives, scores=True):
    return {"query_id": query_id, "query": query, "positive_ids": [f"p{i}" for i in range(len(positives))],
            "positives": positives,
            "positive_scores": [0.9 - 0.1 * i for i in range(len(positives))] if scores else [],
            "negative_ids": [f"n{i}" for i in range(len(negatives))], "negatives": negatives,
            "negative_scores": [0.5 - 0.1 * i for i in range(len(negatives))] if scores else []}


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_native_rows_pad_and_split_positives(tmp_path):
    write_jsonl(tmp_path / "mined.jsonl", [
        _mined("q1", "query one", ["a", "b", "c"], ["x", "y", "z"]),
        _mined("q2", "query two", ["d"], ["u", "v"]),
        _mined("q3", "query three", ["e"], ["w"]),  # too few negatives for N = 2
    ])
    rows = build_rows(read_records(tmp_path), max_positives=2, num_negatives=2)
    assert [r["anchor"] for r in rows] == ["query one", "query one", "query two"]
    assert list(rows[0]) == ["anchor", "positive_1", "positive_2", "negative_1", "negative_2", "scores"]
    assert (rows[0]["positive_1"], rows[0]["positive_2"]) == ("a", "b")
    assert (rows[1]["positive_1"], rows[1]["positive_2"]) == ("c", "c")  # spare slot repeats the first positive
    assert math.isnan(rows[1]["scores"][1]) and rows[1]["scores"][0] == pytest.approx(0.7)
    assert rows[2]["scores"] == [pytest.approx(0.9), pytest.approx(math.nan, nan_ok=True), pytest.approx(0.5),
                                 pytest.approx(0.4)]
    assert (rows[2]["negative_1"], rows[2]["negative_2"]) == ("u", "v")


def test_default_negatives_is_the_fewest_and_scores_are_optional(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [_mined("q1", "one", ["a"], ["x", "y", "z"], scores=False),
                                              _mined("q2", "two", ["b"], ["u", "v"], scores=False)])
    rows = build_rows(read_records(path))
    assert list(rows[0]) == ["anchor", "positive", "negative_1", "negative_2"]
    assert len(rows) == 2


def test_sentence_transformers_ntuple_rows_are_merged_per_anchor(tmp_path):
    path = write_jsonl(tmp_path / "ntuple.jsonl", [
        {"anchor": "q", "positive": "a", "negative_1": "x", "negative_2": "y", "scores": [0.9, 0.4, 0.3]},
        {"anchor": "q", "positive": "b", "negative_1": "x", "negative_2": "y", "scores": [0.8, 0.4, 0.3]},
        {"anchor": "r", "positive": "c", "negative_1": "z", "negative_2": "w", "scores": [0.7, 0.2, 0.1]},
    ])
    records = read_records(path)
    first = records[0]
    assert (first.query, first.positives, first.negatives) == ("q", ["a", "b"], ["x", "y"])
    assert (first.positive_scores, first.negative_scores) == ([0.9, 0.8], [0.4, 0.3]) and first.has_scores
    rows = build_rows(records, max_positives=2)
    assert rows[0]["positive_2"] == "b" and rows[0]["scores"] == [0.9, 0.8, 0.4, 0.3]


def test_saved_dataset_folder(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"anchor": "q", "positive": "a", "negative_1": "x"},
                       {"anchor": "r", "positive": "b", "negative_1": "y"}]).save_to_disk(str(tmp_path / "ds"))
    rows = build_rows(read_records(tmp_path / "ds"))
    assert [r["positive"] for r in rows] == ["a", "b"]


def test_bad_inputs_are_reported(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_records(tmp_path / "missing.jsonl")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"anchor": "q", "positive": 3}])
    with pytest.raises(DataError, match="positive"):
        read_records(bad)
    path = write_jsonl(tmp_path / "m.jsonl", [_mined("q1", "one", ["a"], ["x"])])
    with pytest.raises(DataError, match="no query has 5 negatives"):
        build_rows(read_records(path), num_negatives=5)


def test_config_validation_and_recipe(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'infonce'"):
        TrainConfig(data="x", loss="infonse")
    with pytest.raises(ConfigError, match="batch_size=0"):
        TrainConfig(data="x", batch_size=0)
    cfg_file = tmp_path / "r.toml"
    cfg_file.write_text('[train]\ndata = "d.jsonl"\nloss = "cwcl"\nbatchsize = 4\n')
    with pytest.raises(ConfigError, match="Did you mean 'batch_size'"):
        TrainConfig.from_file(cfg_file)
    recipe = TrainConfig.from_file(Path(__file__).resolve().parents[1] / "training" / "scifact-minilm.toml",
                                   batch_size=8)
    assert recipe.loss == "infonce" and recipe.batch_size == 8 and recipe.loss_args["margin"] == 0.05


def test_build_loss_routes_arguments():
    from negmine.losses import HardNegativeMixing, SoftInfoNCE

    mixing = build_loss("mixing", None, {"temperature": 0.1, "num_hardest": 3, "symmetric": True}, 2)
    assert isinstance(mixing, HardNegativeMixing) and mixing.num_hardest == 3
    assert (mixing.base.temperature, mixing.base.symmetric, mixing.base.num_positive_columns) == (0.1, True, 2)
    assert isinstance(build_loss("soft-infonce", None, {"estimator": "bm25"}), SoftInfoNCE)
    import torch

    frozen = torch.nn.Linear(1, 1)
    assert build_loss("cwcl", None, {}, 1, reference=frozen).reference is frozen
    with pytest.raises(ConfigError, match="has no argument\\(s\\) alpha"):
        build_loss("infonce", None, {"alpha": 1.0})


@pytest.fixture(scope="module")
def scifact_mined(tmp_path_factory, scifact_dir):
    """8 real SciFact training queries (one with two positives) with random corpus documents as negatives."""
    from negmine.data import doc_text, load_data

    data = load_data(scifact_dir, "train")
    rng = random.Random(0)
    doc_ids = list(data.corpus)
    query_ids = data.split_query_ids
    multi = next(q for q in query_ids if len(data.positives(q)) == 2)
    chosen = [multi] + [q for q in query_ids if q != multi][:7]
    records = []
    for qid in chosen:
        positives = data.positives(qid)
        negatives = rng.sample([d for d in doc_ids if d not in positives], 2)
        records.append({"query_id": qid, "query": data.queries[qid], "positive_ids": positives,
                        "positives": [doc_text(data.corpus[d]) for d in positives],
                        "positive_scores": [round(rng.uniform(0.6, 0.9), 3) for _ in positives],
                        "negative_ids": negatives, "negatives": [doc_text(data.corpus[d]) for d in negatives],
                        "negative_scores": [round(rng.uniform(0.1, 0.6), 3) for _ in negatives]})
    return write_jsonl(tmp_path_factory.mktemp("mined") / "mined.jsonl", records)


@pytest.mark.parametrize("loss,loss_args", [
    ("infonce", {"margin": 0.05, "symmetric": True}),
    ("soft-infonce", {"alpha": 1.0, "estimator": "labels"}),
    ("dice", {"infonce_weight": 1.0, "dice_weight": 0.5}),
    ("cwcl", {"power": 2.0}),
    ("mixing", {"num_hardest": 4, "num_negative_mixes": 4, "num_query_mixes": 2}),
])
def test_two_step_trainer_run_with_minilm(loss, loss_args, scifact_mined, minilm_path, scifact_dir, tmp_path):
    """A real SentenceTransformerTrainer run (2 steps, batch 4) per loss; the weights must change."""
    import torch
    from sentence_transformers import SentenceTransformer

    evaluate = loss == "infonce"  # one loss also runs the in-training BEIR evaluation and a checkpoint
    cfg = TrainConfig(data=str(scifact_mined), model=str(minilm_path), loss=loss, loss_args=loss_args,
                      out=str(tmp_path / "run"), max_positives=2, max_steps=2, batch_size=4, max_seq_length=64,
                      learning_rate=1e-4, warmup_ratio=0.0, seed=0, save_steps=2 if evaluate else 0,
                      logging_steps=1, show_progress_bar=False,
                      eval_data=str(scifact_dir) if evaluate else None, eval_split="test", eval_steps=2,
                      eval_max_queries=5, eval_max_corpus=40, eval_batch_size=16)
    result = train(cfg)
    assert result.steps == 2 and result.num_rows == 8
    before = SentenceTransformer(str(minilm_path))
    after = SentenceTransformer(str(result.model_dir))
    changed = any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    assert changed
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["loss"] == loss and manifest["seed"] == 0
    if evaluate:
        assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()
        assert any(k.endswith("ndcg@10") for k in result.metrics)
        assert 0.0 <= next(v for k, v in result.metrics.items() if k.endswith("ndcg@10")) <= 1.0


def test_every_column_reaches_the_loss_with_the_same_features(scifact_mined, minilm_path, tmp_path, monkeypatch):
    """The trainer splits a batch into columns by name prefix; with a column named ``positive`` next to
    ``positive_2``, the first would also receive the second's tensors and sentence-transformers would embed every
    column in its own forward pass (2.3x the memory on SciFact). Each column must arrive with the same keys."""
    import negmine.losses._common as common
    from negmine.training import build_trainer

    cfg = TrainConfig(data=str(scifact_mined), model=str(minilm_path), loss="infonce", out=str(tmp_path / "run"),
                      max_positives=2, batch_size=4, max_seq_length=32, show_progress_bar=False)
    trainer = build_trainer(cfg)
    assert num_positive_columns(trainer.train_dataset) == 2
    seen = []
    original = common.embed

    def spy(model, features):
        seen.append([sorted(f) for f in features])  # the keys as they arrive (the forward adds outputs later)
        return original(model, features)

    monkeypatch.setattr(common, "embed", spy)
    trainer.compute_loss(trainer.model, next(iter(trainer.get_train_dataloader())))
    keys = seen[0]
    assert len(keys) == len([c for c in trainer.train_dataset.column_names if c != "scores"])
    assert all(k == keys[0] for k in keys), keys


def test_gradient_checkpointing_gives_the_same_step(scifact_mined, minilm_path, tmp_path):
    """``gradient_checkpointing`` recomputes activations in the backward pass: after one real step the weights equal
    those of the same step without it (dropout replays the same random state), and they did move."""
    import torch
    from sentence_transformers import SentenceTransformer

    def one_step(name, checkpointing):
        cfg = TrainConfig(data=str(scifact_mined), model=str(minilm_path), loss="infonce", out=str(tmp_path / name),
                          max_steps=1, batch_size=4, max_seq_length=64, learning_rate=1e-4, warmup_ratio=0.0, seed=0,
                          save_steps=0, show_progress_bar=False, gradient_checkpointing=checkpointing)
        return SentenceTransformer(str(train(cfg).model_dir)).state_dict()

    plain, checkpointed = one_step("plain", False), one_step("checkpointed", True)
    start = SentenceTransformer(str(minilm_path)).state_dict()
    assert any(not torch.equal(start[k], plain[k]) for k in plain)
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=0, atol=1e-6, msg=key)


def test_bf16_mixed_precision_takes_a_step_close_to_float32(scifact_mined, minilm_path, tmp_path):
    """``precision="bf16"``: the trainer runs the passes under bf16 autocast, the weights stay float32 and move like
    a float32 step's (same direction: bf16 rounds the activations, not the update rule); fp16 asks for CUDA."""
    import torch
    from sentence_transformers import SentenceTransformer

    from negmine.training import precision_arguments

    def one_step(name, precision):
        cfg = TrainConfig(data=str(scifact_mined), model=str(minilm_path), loss="listwise", out=str(tmp_path / name),
                          max_steps=1, batch_size=4, max_seq_length=64, learning_rate=1e-4, warmup_ratio=0.0, seed=0,
                          save_steps=0, show_progress_bar=False, precision=precision, use_scores=True)
        return SentenceTransformer(str(train(cfg).model_dir)).state_dict()

    start = SentenceTransformer(str(minilm_path)).state_dict()
    fp32, bf16 = one_step("fp32", "fp32"), one_step("bf16", "bf16")
    assert all(v.dtype == torch.float32 for v in bf16.values() if v.is_floating_point())
    delta32 = torch.cat([(fp32[k] - start[k]).flatten().double() for k in start if start[k].is_floating_point()])
    delta16 = torch.cat([(bf16[k] - start[k]).flatten().double() for k in start if start[k].is_floating_point()])
    assert delta16.norm() > 0 and not torch.equal(delta16, delta32)  # it did run in bf16, and it did learn
    assert torch.nn.functional.cosine_similarity(delta16, delta32, dim=0) > 0.9
    assert precision_arguments("bf16") == {"bf16": True, "fp16": False,
                                           **({} if torch.cuda.is_available() else {"use_cpu": True})}
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="fp16.*CUDA"):
            precision_arguments("fp16")
    with pytest.raises(ConfigError, match="precision='fp8'"):
        TrainConfig(data="x", precision="fp8")
