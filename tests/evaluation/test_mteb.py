"""MTEB: the offline SciFact task runs mteb's own evaluator (on cached embeddings) and agrees with negmine eval;
ModelMeta rules; the exported submission loads back with mteb's result loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from negmine.errors import ConfigError, DataError
from negmine.testing import importorskip

mteb = importorskip("mteb")


@pytest.fixture(scope="module")
def minilm():
    from negmine.encoders import load_encoder

    return load_encoder("minilm")


def test_local_task_keeps_mteb_metadata(scifact_dir: Path, arguana_dir: Path, toy, tmp_path: Path) -> None:
    from negmine.evaluation.mteb import local_task

    scifact = local_task(scifact_dir)
    assert scifact.metadata.name == "SciFact"
    assert scifact.metadata.dataset == mteb.get_task("SciFact").metadata.dataset
    assert scifact.ignore_identical_ids is False
    assert isinstance(scifact, type(mteb.get_task("SciFact")))
    arguana = local_task(arguana_dir)
    assert arguana.metadata.name == "ArguAna" and arguana.ignore_identical_ids is True
    with pytest.raises(ConfigError, match="not 'train'"):
        local_task(scifact_dir, "train")
    local = local_task(scifact_dir, "train", task_name="LocalSciFactTrain")
    assert local.metadata.name == "LocalSciFactTrain" and local.ignore_identical_ids is True
    assert local.metadata.eval_splits == ["train"]
    # a folder named like an MTEB task but holding other data is refused (its results would be mislabeled)
    fake = tmp_path / "scifact"
    shutil.copytree(scifact_dir, fake)
    lines = (fake / "qrels" / "test.tsv").read_text().splitlines()
    (fake / "qrels" / "test.tsv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="not the data of MTEB task 'SciFact'"):
        local_task(fake)


def test_model_meta_rules(minilm, minilm_path: Path) -> None:
    from negmine.encoders import load_encoder
    from negmine.evaluation.mteb import make_model_meta

    preset = make_model_meta(minilm)
    assert preset.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert preset.revision == "8b3219a92973c328a8e22fadcfa821b5dc75636a"
    assert "MSMARCO" in preset.training_datasets and preset.is_zero_shot_on(["SciFact"])

    folder = load_encoder(str(minilm_path))  # a model folder, as a fine-tuned model would be
    with pytest.raises(ConfigError, match="org/name"):
        make_model_meta(folder, training_datasets=["SciFact"])
    with pytest.raises(ConfigError, match="declare what"):
        make_model_meta(folder, name="negmine-test/minilm-scifact")
    with pytest.raises(ConfigError, match="Did you mean 'SciFact'"):
        make_model_meta(folder, name="negmine-test/minilm-scifact", training_datasets=["SciFakt"])
    tuned = make_model_meta(folder, name="negmine-test/minilm-scifact", training_datasets=["scifact"],
                            adapted_from="sentence-transformers/all-MiniLM-L6-v2")
    assert tuned.training_datasets == {"SciFact"}
    assert tuned.revision == folder.fingerprint()["weights_sha256"][:40]
    assert tuned.is_zero_shot_on(["SciFact"]) is False
    assert tuned.embed_dim == 384 and tuned.n_parameters and tuned.max_tokens == 256


def test_offline_scifact_task_agrees_with_negmine_eval_and_exports(scifact_minilm, scifact_dir: Path, minilm,
                                                                   tmp_path: Path) -> None:
    """mteb.evaluate on the local SciFact folder: mteb's RetrievalEvaluator and scorer, negmine's cached
    embeddings (nothing is re-encoded), the same nDCG@10 as negmine eval to 4 decimals; then export and reload."""
    from negmine.encoders import EmbeddingCache
    from negmine.evaluation.mteb import evaluate_mteb, scores_of
    from negmine.evaluation.submission import export_submission

    cache = EmbeddingCache()
    result = evaluate_mteb(minilm, data=[scifact_dir], output_folder=tmp_path / "mteb", cache=cache)
    assert cache.encoded == 0 and cache.hits == 2  # served from the cache negmine eval filled
    scores = scores_of(result)["SciFact"]["test"]
    ours = scifact_minilm.metrics
    print(f"MTEB offline SciFact nDCG@10 = {scores['ndcg_at_10']:.5f}; negmine eval = {ours['ndcg@10']:.5f}")
    assert scores["main_score"] == scores["ndcg_at_10"]
    for ours_key, mteb_key in (("ndcg@10", "ndcg_at_10"), ("ndcg@1", "ndcg_at_1"), ("mrr@10", "mrr_at_10"),
                               ("recall@100", "recall_at_100"), ("map@10", "map_at_10")):
        assert round(scores[mteb_key], 4) == round(ours[ours_key], 4), ours_key
    assert abs(scores["ndcg_at_10"] - 0.6451) <= 0.001

    # mteb's results layout with an explicit model_meta.json
    revision_dir = tmp_path / "mteb" / "results" / "sentence-transformers__all-MiniLM-L6-v2" / \
        "8b3219a92973c328a8e22fadcfa821b5dc75636a"
    assert (revision_dir / "SciFact.json").is_file()
    meta = json.loads((revision_dir / "model_meta.json").read_text())
    assert meta["name"] == "sentence-transformers/all-MiniLM-L6-v2" and "MSMARCO" in meta["training_datasets"]

    submission = export_submission(tmp_path / "mteb", tmp_path / "submission")
    assert submission.scores["SciFact"] == pytest.approx(scores["ndcg_at_10"], abs=1e-6)
    assert submission.zero_shot is True
    exported = tmp_path / "submission" / "results" / "sentence-transformers__all-MiniLM-L6-v2" / \
        "8b3219a92973c328a8e22fadcfa821b5dc75636a"
    assert sorted(p.name for p in exported.iterdir()) == ["SciFact.json", "model_meta.json"]
    assert (tmp_path / "submission" / "SUBMISSION.md").is_file()
    assert (tmp_path / "submission" / "model_meta.py").read_text().startswith("from mteb")  # rebuilt and checked
    # independently of export's own check: mteb's loader reads the exported folder
    loaded = mteb.ResultCache(cache_path=tmp_path / "submission").load_results(
        models=["sentence-transformers/all-MiniLM-L6-v2"], tasks=["SciFact"], include_remote=False,
        validate_and_filter=True)
    [model_result] = loaded.model_results
    assert model_result.task_results[0].get_score() == pytest.approx(scores["ndcg_at_10"], abs=1e-6)

    # a local-only task cannot be submitted; nor can results whose model does not declare its training data
    bad = tmp_path / "bad" / "results" / "negmine-test__m" / "r1"
    bad.mkdir(parents=True)
    data = json.loads((revision_dir / "SciFact.json").read_text())
    data["task_name"] = "LocalScifactTrain"
    (bad / "LocalScifactTrain.json").write_text(json.dumps(data))
    meta.update(name="negmine-test/m", revision="r1")
    (bad / "model_meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="not an MTEB task"):
        export_submission(tmp_path / "bad", tmp_path / "bad-out")
    meta["training_datasets"] = None
    (bad / "model_meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="training_datasets"):
        export_submission(tmp_path / "bad", tmp_path / "bad-out")
