"""Export MTEB results for a pull request to the MTEB results repository.

:func:`export_submission` copies one model's results (written by :func:`negmine.evaluation.mteb.evaluate_mteb`) into
the results-repository layout (``results/<org__name>/<revision>/<Task>.json`` + ``model_meta.json``), validates the
copy by loading it back with ``mteb.ResultCache.load_results``, and writes the ``ModelMeta`` as code and the PR steps.

``mteb`` is an optional extra (``pip install "negmine[mteb]"``); it is imported only inside these functions.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negmine.errors import DataError
from negmine.evaluation.mteb import _mteb, find_mteb_task

logger = logging.getLogger(__name__)


@dataclass
class Submission:
    """What :func:`export_submission` wrote and validated."""

    folder: Path
    model_name: str
    revision: str
    scores: dict[str, float] = field(default_factory=dict)  # task -> main score (eval split mean)
    zero_shot: bool | None = None
    files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.model_name} @ {self.revision} -> {self.folder}"]
        lines += [f"  {task}: {score:.4f}" for task, score in sorted(self.scores.items())]
        lines.append(f"  zero-shot: {self.zero_shot}")
        return "\n".join(lines)


def _revision_folders(results: Path) -> list[Path]:
    if (results / "model_meta.json").is_file():
        return [results]
    base = results / "results" if (results / "results").is_dir() else results
    return sorted(p.parent for p in base.glob("*/*/model_meta.json"))


def _model_meta_code(meta: Any) -> str:
    """``ModelMeta(...)`` as importable Python (for the model-registry pull request to mteb)."""
    import ast
    import re

    variable = re.sub(r"\W", "_", meta.model_name_as_path()).strip("_").lower() or "model"
    if variable[0].isdigit():
        variable = f"model_{variable}"
    imports = ["from mteb.models.model_meta import ModelMeta, ScoringFunction"]
    if meta.loader is not None:
        imports.append(f"from {meta.loader.__module__} import {meta.loader.__name__}")
    try:
        code = "\n".join(imports) + f"\n\n{variable} = {meta.to_python()}\n"
        namespace: dict[str, Any] = {}
        exec(compile(ast.parse(code), "model_meta.py", "exec"), namespace)  # the snippet must rebuild the meta
        rebuilt = namespace[variable]
        if (rebuilt.name, rebuilt.revision, rebuilt.training_datasets) != (meta.name, meta.revision,
                                                                           meta.training_datasets):
            raise ValueError("the rendered ModelMeta differs from model_meta.json")
    except Exception as err:  # noqa: BLE001 - the snippet is a convenience; model_meta.json is the submission
        return f"# could not render the ModelMeta as Python ({err}); see model_meta.json\n"
    return code


def export_submission(results: str | os.PathLike, out_dir: str | os.PathLike, *, model_name: str | None = None,
                      revision: str | None = None, tasks: Sequence[str] | None = None) -> Submission:
    """Copy one model's MTEB results into the results-repository layout and validate them with mteb's loader.

    Writes ``<out_dir>/results/<org__name>/<revision>/`` (the task JSON files and ``model_meta.json``, as the
    embeddings-benchmark/results repository holds them), ``model_meta.py`` (the ``ModelMeta`` as code, for the
    model registry PR to mteb) and ``SUBMISSION.md`` (scores and the PR steps).

    Args:
        results: an ``evaluate_mteb(output_folder=...)`` folder, its ``results/`` folder or one
            ``<org__name>/<revision>`` folder.
        out_dir: where to write the submission (created; existing files for this model are replaced).
        model_name / revision: which model to export when ``results`` holds several.
        tasks: only these tasks (default: all the model's result files).

    Raises:
        DataError: no results, several models without a choice, a result file for a task that is not in MTEB (a
            local-only task), a missing eval split, or a copy that mteb does not load back with the same scores.
    """
    _mteb()  # without mteb: fail here, with the pip install line
    source, meta = _pick_results_folder(Path(results), model_name, revision)
    files = sorted(p for p in source.glob("*.json") if p.name != "model_meta.json")
    if tasks is not None:
        files = [p for p in files if p.stem in set(tasks)]
    if not files:
        raise DataError("no task result files to export", path=source)
    task_scores, task_objects = _registered_task_scores(files)

    out_dir = Path(out_dir)
    target = out_dir / "results" / meta.model_name_as_path() / str(meta.revision)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    written = []
    for path in [*files, source / "model_meta.json"]:
        shutil.copy2(path, target / path.name)
        written.append(str(target / path.name))
    _check_loads_back(out_dir, meta, task_scores)

    zero_shot = meta.is_zero_shot_on(task_objects)
    (out_dir / "model_meta.py").write_text(_model_meta_code(meta), encoding="utf-8")
    (out_dir / "SUBMISSION.md").write_text(_submission_text(meta, task_scores, zero_shot), encoding="utf-8")
    written += [str(out_dir / "model_meta.py"), str(out_dir / "SUBMISSION.md")]
    return Submission(folder=target, model_name=str(meta.name), revision=str(meta.revision), scores=task_scores,
                      zero_shot=zero_shot, files=written)


def _pick_results_folder(results: Path, model_name: str | None, revision: str | None) -> tuple[Path, Any]:
    """The one ``<org__name>/<revision>`` folder to export and its validated ``ModelMeta``."""
    from mteb.models.model_meta import ModelMeta

    if not results.exists():
        raise DataError("no such results folder", path=results)
    candidates = []
    for folder in _revision_folders(results):
        meta_obj = json.loads((folder / "model_meta.json").read_text(encoding="utf-8"))
        if model_name is not None and meta_obj.get("name") != model_name:
            continue
        if revision is not None and meta_obj.get("revision") != revision:
            continue
        candidates.append((folder, meta_obj))
    if not candidates:
        raise DataError(f"no MTEB results with model_meta.json{f' for {model_name}' if model_name else ''}"
                        f"{f' @ {revision}' if revision else ''} (expected results/<org__name>/<revision>/)",
                        path=results)
    if len(candidates) > 1:
        names = ", ".join(f"{m.get('name')}@{m.get('revision')}" for _, m in candidates)
        raise DataError(f"several models in the results folder ({names}); pick one with --model-name/--revision",
                        path=results)
    source, meta_obj = candidates[0]
    meta_obj = {k: v for k, v in meta_obj.items() if k != "is_cross_encoder"}  # derived field mteb writes out
    meta = ModelMeta.model_validate_json_resolved(json.dumps(meta_obj))
    if meta.training_datasets is None:
        raise DataError("model_meta.json does not declare training_datasets; MTEB needs it to mark zero-shot "
                        "results (re-run with --training-dataset ...)", path=source / "model_meta.json",
                        field="training_datasets")
    return source, meta


def _registered_task_scores(files: Sequence[Path]) -> tuple[dict[str, float], list[Any]]:
    """Main score of each result file, refusing tasks MTEB does not know and results missing an eval split."""
    mteb = _mteb()
    from mteb import TaskResult

    task_scores: dict[str, float] = {}
    task_objects = []
    for path in files:
        result = TaskResult.from_disk(path)
        registered = find_mteb_task(result.task_name)
        if registered != result.task_name:
            raise DataError(f"task {result.task_name!r} is not an MTEB task (a local-only task?); only results of "
                            "registered MTEB tasks can go to the results repository", path=path)
        task = mteb.get_task(result.task_name)
        score = result.validate_and_filter_scores(task=task).get_score()
        if score != score:  # NaN: a missing split or subset
            raise DataError(f"results for {result.task_name} miss eval split(s) {task.eval_splits}", path=path)
        task_scores[result.task_name] = float(score)
        task_objects.append(task)
    return task_scores, task_objects


def _check_loads_back(out_dir: Path, meta: Any, task_scores: dict[str, float]) -> None:
    """mteb's own loader must find this model with these scores in the exported folder."""
    mteb = _mteb()
    loaded = mteb.ResultCache(cache_path=out_dir).load_results(
        models=[meta.name], tasks=list(task_scores), require_model_meta=True, include_remote=False,
        validate_and_filter=True)
    model_results = [m for m in loaded.model_results
                     if m.model_name == meta.name and m.model_revision == meta.revision]
    if len(model_results) != 1:
        raise DataError(f"mteb's ResultCache.load_results did not load {meta.name}@{meta.revision} back from the "
                        "export", path=out_dir)
    loaded_scores = {r.task_name: float(r.get_score()) for r in model_results[0].task_results}
    if set(loaded_scores) != set(task_scores) or any(abs(loaded_scores[t] - s) > 1e-9 for t, s in task_scores.items()):
        raise DataError(f"scores loaded back by mteb {loaded_scores} differ from the exported ones {task_scores}",
                        path=out_dir)


def _submission_text(meta: Any, task_scores: dict[str, float], zero_shot: Any) -> str:
    """``SUBMISSION.md``: the scores and the pull-request steps."""
    mteb = _mteb()
    rows = "\n".join(f"| {task} | {', '.join(mteb.get_task(task).eval_splits)} | "
                     f"{mteb.get_task(task).metadata.main_score} | {score:.4f} |"
                     for task, score in sorted(task_scores.items()))
    return f"""# MTEB results: {meta.name}

Revision `{meta.revision}`; training datasets: {sorted(meta.training_datasets) or 'none'}; zero-shot on these tasks:
{zero_shot}. Exported by negmine with mteb {mteb.__version__}; loaded back with `mteb.ResultCache.load_results`.

| task | splits | main score | score |
|---|---|---|---|
{rows}

To submit:
1. Fork and clone https://github.com/embeddings-benchmark/results.
2. Copy `results/{meta.model_name_as_path()}/` from this folder into the clone's `results/` folder.
3. Open a pull request. A model not yet in mteb's registry also needs its `ModelMeta` (see `model_meta.py`)
   added to mteb's `mteb/models/model_implementations/` in a pull request to embeddings-benchmark/mteb.
"""
