"""benchmarks/peers.py on a tiny real SciFact sample (8 queries, 60 documents): sentence-transformers'
mine_hard_negatives with a teacher (MiniLM standing in for EmbeddingGemma, the preset's prompts passed through), then 2
training steps of the student with MultipleNegativesRankingLoss and with DistillKLDivLoss on the teacher's scores."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def peers(benchmark_script):
    return benchmark_script("peers")


@pytest.fixture(scope="module")
def sample(scifact_dir):
    from negmine.data import load_data
    from negmine.evaluation import subsample

    return subsample(load_data(scifact_dir, "train"), max_queries=8, max_corpus=60, seed=0)


def test_teacher_prompts_come_from_the_preset(peers):
    from negmine.encoders.presets import PRESETS

    gemma = PRESETS["embeddinggemma"]
    assert peers.teacher_prompts("embeddinggemma") == (gemma.query_prompt, gemma.corpus_prompt)
    assert peers.teacher_prompts("minilm") == (None, None)  # MiniLM's card asks for none
    assert peers.teacher_prompts("/some/folder") == (None, None)


@pytest.mark.slow  # two 2-step trainings of MiniLM plus a mining: about a minute on an idle 2-core machine
def test_mining_with_scores_and_two_training_rows(peers, sample, minilm_path, tmp_path):
    from negmine.training import TrainConfig

    settings = peers.PeerMining(range_max=20, num_negatives=3, use_faiss=False, max_seq_length=64)
    result = peers.mine_peer_teacher(sample, "minilm", output_scores=True, settings=settings,
                                     model_path=str(minilm_path))
    assert result.prompts == {"query_prompt_name": "query", "corpus_prompt_name": "document"}  # MiniLM's, empty
    mined = result.dataset
    assert {"scores", "negative_1", "negative_3"} <= set(mined.column_names)
    first = mined[0]
    assert len(first["scores"]) == 4 and all(s < first["scores"][0] for s in first["scores"][1:])  # relative margin
    mined.to_json(str(tmp_path / "mined.jsonl"))  # both rows train on this one mining
    for loss in ("mnrl", "DistillKLDivLoss"):  # a short name or the sentence-transformers class name
        cfg = TrainConfig(data="unused", model=str(minilm_path), out=str(tmp_path / loss), max_steps=2, batch_size=4,
                          max_seq_length=64, save_steps=0, show_progress_bar=False, logging_steps=1)
        final = peers.peer_teacher(sample, "minilm", cfg, loss=loss, model_path=str(minilm_path),
                                   settings=settings, mined_cache=tmp_path / "mined.jsonl")
        assert (final / "config.json").is_file()
        record = json.loads((tmp_path / loss / "peer.json").read_text())
        assert record["steps"] == 2 and record["loss"] == loss
        assert json.loads((tmp_path / loss / "manifest.json").read_text())["config"]["loss"] == \
            peers.PEER_LOSSES.get(loss, loss)
    with pytest.raises(ValueError, match="output_scores=True"):
        peers.train_peer_teacher(mined.remove_columns("scores"), cfg, "margin-mse")
    with pytest.raises(ValueError, match="is not one of"):
        peers.peer_loss("CoSENTLoss", None)


def test_prompts_by_name_where_the_model_ships_them_else_the_presets(peers):
    from types import SimpleNamespace

    from negmine.encoders.presets import PRESETS

    gemma = PRESETS["embeddinggemma"]
    named = SimpleNamespace(prompts={"query": "q: ", "document": "d: ", "Retrieval": "r: "})
    assert peers.mining_prompts(named, "embeddinggemma") == {"query_prompt_name": "query",
                                                            "corpus_prompt_name": "document"}
    bare = SimpleNamespace(prompts={})
    assert peers.mining_prompts(bare, "embeddinggemma") == {"query_prompt": gemma.query_prompt,
                                                           "corpus_prompt": gemma.corpus_prompt}
    assert peers.mining_prompts(bare, "/a/folder") == {}
