"""``negmine mteb run`` and ``negmine mteb export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MTEB_EXAMPLES = [
    "negmine mteb run --model minilm --data ../shared/data/beir/scifact --out runs/mteb",
    "negmine mteb run --model runs/x/model --name myorg/minilm-scifact --training-dataset SciFact --task SciFact",
    "negmine mteb export --results runs/mteb --out mteb-submission",
]

mteb_app = typer.Typer(
    name="mteb",
    help="Run MTEB tasks with mteb's own evaluator (offline from local BEIR folders) and export results for a pull "
         "request to the MTEB results repository.",
    no_args_is_help=True,
    add_completion=False,
)


@mteb_app.command("run")
def run(
    model: Annotated[str, typer.Option("--model", "-m", help="Preset (minilm, ...), model folder or hub id.")],
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="MTEB task name (mteb downloads its data: "
                                                                         "online). Repeatable.")] = None,
    data: Annotated[list[str] | None, typer.Option("--data", "-d", help="Local BEIR folder, run offline as an MTEB "
                                                                         "task (scifact -> SciFact). "
                                                                         "Repeatable.")] = None,
    split: Annotated[str, typer.Option("--split", help="Qrels split of the --data folders.")] = "test",
    task_name: Annotated[str | None, typer.Option("--task-name", help="Task name for a single --data folder "
                                                                      "(default: the matching MTEB task).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder (mteb's layout: "
                                                          "results/<org__name>/<revision>/<Task>.json).")]
    = Path("runs/mteb"),
    name: Annotated[str | None, typer.Option("--name", help="Model name org/name (required unless a "
                                                            "preset).")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Model revision (default: the preset's, or "
                                                                    "the weights' sha256).")] = None,
    training_dataset: Annotated[list[str] | None, typer.Option(
        "--training-dataset", help="MTEB task the model was trained on (e.g. SciFact for SciFact train); "
                                   "repeatable; 'none' for none. Required unless a preset.")] = None,
    adapted_from: Annotated[str | None, typer.Option("--adapted-from", help="Base model hub id.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Encoding batch size.")] = 32,
    model_path: Annotated[str | None, typer.Option("--model-path", help="Local folder with a preset's "
                                                                        "weights.")] = None,
    unknown_qrels: Annotated[str, typer.Option("--unknown-qrels", help="Qrels naming unknown ids in --data: keep "
                                                                       "(MTEB's scoring), error or skip.")] = "keep",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the embedding cache.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")] = True,
) -> None:
    """Evaluate a model on MTEB tasks with mteb.evaluate; results go to mteb's results layout under --out.

    Examples:

        negmine mteb run --model minilm --data ../shared/data/beir/scifact --out runs/mteb

        negmine mteb run --model runs/x/model --name myorg/minilm-scifact --training-dataset SciFact --task SciFact
    """
    from negmine.cli._options import check_unknown_qrels
    from negmine.evaluation.mteb import evaluate_mteb, scores_of

    check_unknown_qrels(unknown_qrels)
    declared = None
    if training_dataset is not None:
        declared = [] if [t.lower() for t in training_dataset] == ["none"] else list(training_dataset)
    result = evaluate_mteb(model, task or [], data=data or [], split=split, task_name=task_name, output_folder=out,
                           batch_size=batch_size, cache=not no_cache, model_path=model_path,
                           unknown_qrels=unknown_qrels, show_progress_bar=progress, name=name, revision=revision,
                           training_datasets=declared, adapted_from=adapted_from)
    typer.echo(f"{result.model_name} @ {result.model_revision}")
    for task_name_, splits in scores_of(result).items():
        for split_name, scores in splits.items():
            extra = f", nDCG@10 {scores['ndcg_at_10']:.4f}" if "ndcg_at_10" in scores else ""
            typer.echo(f"  {task_name_}[{split_name}]: main score {scores['main_score']:.4f}{extra}")
    for error in result.exceptions or []:
        typer.secho(f"  {error.task_name} failed: {error.exception}", fg=typer.colors.RED, err=True)
    typer.echo(f"results in {out / 'results'}")


@mteb_app.command("export")
def export(
    results: Annotated[Path, typer.Option("--results", "-r", help="Folder written by `negmine mteb run` (or "
                                                                  "mteb.evaluate's cache).")] = Path("runs/mteb"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Submission folder.")] = Path("mteb-submission"),
    model_name: Annotated[str | None, typer.Option("--model-name", help="Model to export when --results holds "
                                                                        "several.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Revision to export.")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="Only these tasks. Repeatable.")] = None,
) -> None:
    """Write a model's results in the MTEB results-repository layout and check mteb loads them back.

    Produces <out>/results/<org__name>/<revision>/ (task JSONs + model_meta.json), model_meta.py and
    SUBMISSION.md with the pull-request steps.

    Examples:

        negmine mteb export --results runs/mteb --out mteb-submission
    """
    from negmine.evaluation.submission import export_submission

    submission = export_submission(results, out, model_name=model_name, revision=revision, tasks=task)
    typer.echo(submission.summary())
    typer.echo(f"validated with mteb.ResultCache.load_results; see {out / 'SUBMISSION.md'}")
