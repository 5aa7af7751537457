"""benchmarks/scifact_quality.py in smoke mode: zero-shot, the peer baseline and negmine InfoNCE on a handful of real
SciFact/ArguAna queries, 2 training steps; then a re-run that must skip every step; and the recipe file agreeing with
the script's `best` row. About 70 s of CPU on a 2-core machine (most of it the two 2-step trainings)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("zero-shot", "peer-baseline", "infonce")


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("scifact_quality")


@pytest.fixture(scope="module")
def smoke_run(script, tmp_path_factory, beir_root, minilm_path):
    """One smoke run of the three rows (with ArguAna), then the same command again."""
    root = tmp_path_factory.mktemp("scifact_quality")
    argv = ["--smoke", "--recipe", ",".join(RECIPES), "--arguana", "--data-root", str(beir_root),
            "--runs", str(root / "runs"), "--out-table", str(root / "scifact.md")]
    first = script.main(argv)
    stamps = {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("*") if p.is_file()}
    second = script.main(argv)
    return {"root": root, "runs": root / "runs", "first": first, "second": second, "stamps": stamps}


def test_every_step_ran_and_wrote_its_outputs(smoke_run):
    runs = smoke_run["runs"]
    steps = {(e["step"], e["status"]) for e in smoke_run["first"]}
    assert {e["status"] for e in smoke_run["first"]} == {"done"}
    assert ("st mine", "done") in steps and ("mine minilm", "done") in steps
    assert ("train peer-baseline seed 12", "done") in steps and ("train infonce seed 12", "done") in steps
    assert (runs / "_shared" / "st-mine" / "ntuple.jsonl").stat().st_size > 0
    assert (runs / "_shared" / "mine-minilm" / "mined.jsonl").stat().st_size > 0
    for name in ("peer-baseline", "infonce"):
        train = runs / name / "12" / "train"
        assert (train / "final" / "config.json").is_file() and (train / "manifest.json").is_file()
        record = _json(train / "run.json")
        assert record["steps"] == 2 and record["rows"] > 0 and record["seconds"] > 0
        assert record["config"]["max_seq_length"] == 64 and record["commit"] and record["hardware"]
    assert not (runs / "zero-shot" / "12" / "train").exists()  # zero-shot trains nothing
    assert not (runs / "peer-baseline" / "13").exists()  # smoke mode runs a row's first seed only


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize("dataset", ["scifact", "arguana"])
def test_metrics_are_scores_with_per_query_values(smoke_run, name, dataset):
    metrics = _json(smoke_run["runs"] / name / "12" / f"eval-{dataset}" / "metrics.json")
    assert metrics["num_queries"] == 8 and metrics["smoke"] is True
    for key in ("ndcg@10", "recall@100"):
        assert 0.0 <= metrics["metrics"][key] <= 1.0
        per_query = metrics["per_query"][key]
        assert len(per_query) == 8 and all(0.0 <= v <= 1.0 for v in per_query.values())
        assert metrics["metrics"][key] == pytest.approx(sum(per_query.values()) / len(per_query))
    assert (smoke_run["runs"] / name / "12" / f"eval-{dataset}" / "run.trec").stat().st_size > 0


def test_rerun_skips_every_step_and_rewrites_nothing(smoke_run):
    second = smoke_run["second"]
    assert second and {e["status"] for e in second} == {"skipped"}
    assert {e["step"] for e in second} == {e["step"] for e in smoke_run["first"]}
    after = {p: p.stat().st_mtime_ns for p in smoke_run["runs"].rglob("*") if p.is_file()}
    changed = [p for p in smoke_run["stamps"] if after.get(p) != smoke_run["stamps"][p] and p.suffix != ".md"]
    assert changed == []


def test_table_shows_measured_numbers_and_not_run_rows(script, smoke_run):
    table = (smoke_run["root"] / "scifact.md").read_text()
    assert "SMOKE" in table and "Hardware" in table and "Commit of the runs" in table
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w-]+)`.*$", table, re.MULTILINE)}
    assert set(rows) == {r.name for r in script.RECIPES}
    for name in RECIPES:
        measured = _json(smoke_run["runs"] / name / "12" / "eval-scifact" / "metrics.json")["metrics"]["ndcg@10"]
        assert f"| {measured:.4f} |" in rows[name]
    assert re.search(r"p=[0-9.e-]+", rows["infonce"])  # paired test against the peer baseline
    stats = _json(smoke_run["runs"] / "_shared" / "mine-minilm" / "stats.json")
    assert f"`mine-minilm`: {stats['queries']['total']} queries, {stats['negatives']['selected']} negatives" in table
    for name in {r.name for r in script.RECIPES} - set(RECIPES):
        assert rows[name].count("not run") >= 2 and not re.search(r"\d\.\d{4}", rows[name])


def test_one_change_at_a_time_pairs_a_row_with_its_base_on_shared_seeds(script, smoke_run):
    assert all(r.base in script.BY_NAME for r in script.RECIPES if r.base)
    measured = script.collect(smoke_run["runs"], script.BY_NAME["infonce"])[12]
    rows = {r.name: {} for r in script.RECIPES}
    rows["infonce"] = {12: measured, 13: _shifted(measured, -0.5)}  # seed 13 only in the base: not in the difference
    rows["dice"] = {12: _shifted(measured, 0.25)}
    rows["mpnet-arhn-infonce"] = {12: measured}  # its base (mpnet-infonce) was not run: no line
    lines = script.one_change_at_a_time(rows)
    assert len(lines) == 1 and lines[0].startswith("- `dice` − `infonce` (seed 12): +0.2500 [+0.2500, +0.2500]")


def _shifted(seed_result: dict, delta: float) -> dict:
    """A copy of one seed's results with every query's SciFact nDCG@10 moved by ``delta``."""
    import copy

    out = copy.deepcopy(seed_result)
    table = out["scifact"]["per_query"]["ndcg@10"]
    for query in table:
        table[query] += delta
    return out


class _ReverseJudge:
    """A toy judge: ranks the candidates in reverse order (so every negative ranks above the original positive and
    is relabeled); it stands in for the LLM, whose cost has no place in a default test run."""

    name = "reverse"

    def get_config_dict(self):
        return {"type": "reverse"}

    def judge(self, query, passages, num_positives=1):
        from negmine.relabel.base import Judgment, Label

        n = len(passages)
        return [Judgment(Label.POSITIVE, score=1.0, rank=n - 1 - i, judge=self.name) for i in range(n)]


def test_relabel_step_merges_the_judged_subset(script, smoke_run, monkeypatch):
    """The relabel glue (judge spec, partial --relabel-queries, merge into the full train file, skip on re-run)."""
    import negmine.relabel.factory as factory
    from negmine.relabel import read_mined

    specs = []
    monkeypatch.setattr(factory, "load_judge", lambda spec, **kw: specs.append(spec) or _ReverseJudge())
    args = script.parse_args(["--smoke", "--runs", str(smoke_run["runs"]), "--relabel-queries", "3",
                              "--judge-model", "/models/toy.gguf"])
    ctx = script.Context(args)
    mined = smoke_run["runs"] / "_shared" / "mine-minilm" / "mined.jsonl"
    merged = script.relabel(ctx, mined, "minilm", "arhn")
    assert specs == ["llm:/models/toy.gguf"] and merged.parent.name == "relabel-minilm-arhn-toy-q3"
    before, after = list(read_mined(mined)), list(read_mined(merged))
    assert [r.query_id for r in after] == [r.query_id for r in before]
    for i, (old, new) in enumerate(zip(before, after)):
        if i < 3:  # judged: every negative ranked above the positive became a positive
            assert new.positives == old.positives + old.negatives and new.negatives == []
        else:
            assert new == old
    step = _json(merged.parent / "step.json")
    assert step["queries_judged"] == 3 and step["summary"]["relabeled"] == sum(len(r.negatives) for r in before[:3])
    assert script.relabel(ctx, mined, "minilm", "arhn") == merged and ctx.log[-1]["status"] == "skipped"
    assert specs == ["llm:/models/toy.gguf"]  # no judge built on the re-run


def test_recipe_file_is_the_best_row(script):
    from negmine.config import build_config, read_toml
    from negmine.mining import MineConfig
    from negmine.training import TrainConfig

    toml = REPO / "training" / "scifact-quality.toml"
    best = script.BY_NAME[script.ALIASES["best"]]
    mine = build_config(MineConfig, read_toml(toml, "mine"), {})
    train = TrainConfig.from_file(toml)
    full = script.FULL
    assert mine.retriever == best.teacher and mine.range_max == full.range_max
    assert mine.num_negatives == full.num_negatives + script.SPARE_NEGATIVES
    assert math.isclose(mine.percentage, 1 - script.RELATIVE_MARGIN) and mine.sampling == "top"
    assert (train.loss, train.loss_args, train.max_positives) == (best.loss, dict(best.loss_args), best.max_positives)
    assert (train.num_negatives, train.batch_size, train.epochs, train.max_seq_length) == (
        full.num_negatives, full.batch_size, full.epochs, full.max_seq_length)
    assert (train.learning_rate, train.warmup_ratio) == (full.learning_rate, full.warmup_ratio)
    assert train.seed == script.SEED
    relabels = "negmine relabel" in toml.read_text()
    assert relabels == (best.false_negatives != "none")  # the file's CLI commands relabel iff the row does


def test_recipe_selection(script):
    assert [r.name for r in script.select_recipes("best")] == [script.BEST]
    assert len(script.select_recipes("all")) == len(script.RECIPES)
    with pytest.raises(SystemExit, match="unknown recipe"):
        script.select_recipes("infonse")
    peer = script.BY_NAME["peer-baseline"]
    assert script.seeds_of(peer, None) == (12, 13, 14) and script.seeds_of(peer, None, smoke=True) == (12,)
    assert script.seeds_of(peer, "1,2") == (1, 2) and script.seeds_of(script.BY_NAME["zero-shot"], "1,2") == (12,)


def _json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())
