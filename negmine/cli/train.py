"""``negmine train``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from negmine.cli._options import ConfigOpt, DryRunOpt, OutOpt, SeedOpt, print_config, print_table

TRAIN_EXAMPLES = [
    "negmine train --data runs/scifact-minilm/mined.jsonl --model minilm --loss infonce --out runs/scifact-infonce",
    "negmine train --config training/scifact-minilm.toml --loss soft-infonce --loss-arg alpha=1.0 --loss-arg t=0.1",
    "negmine train --data relabeled.jsonl --max-positives 4 --loss dice --loss-arg infonce_weight=1.0 --out runs/d",
    "negmine train --data runs/scored/mined.jsonl --scores teacher --loss listwise "
    "--loss-arg teacher_temperature=0.02 --loss-arg infonce_weight=0.1 --out runs/distil",
    "negmine train --data runs/scifact-minilm/mined.jsonl --random-negatives 2 --batch-sampler ngame --out runs/star",
    "negmine train --data runs/scifact-minilm/mined.jsonl --epochs 3 --remine-every 1 --adore --out runs/adore",
]


def _parse_loss_args(values: list[str] | None) -> dict:
    parsed = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--loss-arg")
        try:
            parsed[key.replace("-", "_")] = json.loads(raw)
        except ValueError:
            parsed[key.replace("-", "_")] = raw  # a bare string such as estimator=bm25
    return parsed


def train(
    data: Annotated[str | None, typer.Option(
        "--data", "-d", help="mined.jsonl (or its folder), or a sentence-transformers n-tuple file/folder.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="minilm (or another preset), a model folder or "
                                                                    "a hub id.")] = None,
    loss: Annotated[str | None, typer.Option(help="infonce, soft-infonce, dice, cwcl, mixing, listwise "
                                                             "or margin-mse.")] = None,
    out: OutOpt = None,
    config: ConfigOpt = None,
    loss_arg: Annotated[list[str] | None, typer.Option("--loss-arg", help="KEY=VALUE argument of the loss class "
                                                                          "(repeatable; JSON values).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Loss temperature (scale = 1/temperature).")] = None,
    reference_model: Annotated[str | None, typer.Option(help="Frozen model for the loss: guide (infonce, dice), "
                                                             "estimator (soft-infonce), reference (cwcl).")] = None,
    max_positives: Annotated[int | None, typer.Option(help="Positive columns per row (several positives per "
                                                           "query).")] = None,
    num_negatives: Annotated[int | None, typer.Option(help="Hard-negative columns per row (default: the fewest "
                                                           "of any query).")] = None,
    use_scores: Annotated[bool | None, typer.Option("--use-scores/--no-scores", help="Pass the teacher scores as "
                                                                                      "the labels column.")] = None,
    scores: Annotated[str | None, typer.Option("--scores", help="Which scores of mined.jsonl the loss sees: "
                                                                "retriever (default) or teacher (negmine "
                                                                "score).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Training epochs.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps (overrides --epochs).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per batch (no-duplicates batching).")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", "--learning-rate", help="Learning rate.")] = None,
    max_seq_length: Annotated[int | None, typer.Option(help="Truncate texts to this many tokens.")] = None,
    seed: SeedOpt = None,
    eval_data: Annotated[str | None, typer.Option(help="BEIR folder or dataset name for in-training "
                                                       "nDCG@10.")] = None,
    eval_split: Annotated[str | None, typer.Option(help="Qrels split of --eval-data.")] = None,
    eval_steps: Annotated[int | None, typer.Option(help="Evaluate every N steps (default: --save-steps).")] = None,
    eval_max_queries: Annotated[int | None, typer.Option(help="Subsample the evaluation queries.")] = None,
    eval_max_corpus: Annotated[int | None, typer.Option(help="Subsample the evaluation corpus.")] = None,
    save_steps: Annotated[int | None, typer.Option(help="Checkpoint every N steps (0: no checkpoints).")] = None,
    resume_from_checkpoint: Annotated[str | None, typer.Option(help="Resume from this checkpoint folder, or 'last': "
                                                                    "the newest complete one in OUT/checkpoints "
                                                                    "(rerun a killed run with it).")] = None,
    random_negatives: Annotated[int | None, typer.Option(help="Random corpus negatives per row beside the hard ones "
                                                              "(STAR; seeded, never a positive or a copy).")] = None,
    corpus: Annotated[str | None, typer.Option(help="BEIR folder or dataset name of the random negatives (default: "
                                                    "the data of the mining run's manifest.json).")] = None,
    gradient_checkpointing: Annotated[bool | None, typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Recompute activations in the backward pass: the same gradients, far less memory, one more forward "
             "pass per step.")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32, bf16 (mixed precision: bfloat16 passes, float32 "
                                                       "weights and loss; for GPUs, measure before using it on a "
                                                       "CPU) or fp16 (CUDA).")] = None,
    batch_sampler: Annotated[str | None, typer.Option(help="no-duplicates, or ngame: batches of queries close in "
                                                           "the start model's embedding space (NGAME).")] = None,
    ngame_cluster_size: Annotated[int | None, typer.Option(help="Rows per query cluster of --batch-sampler "
                                                                "ngame.")] = None,
    adore: Annotated[bool | None, typer.Option(
        "--adore/--no-adore", help="Train the query side only; documents keep the start model, frozen.")] = None,
    remine_every: Annotated[int | None, typer.Option(help="Re-mine with the student every N epochs (or steps, "
                                                          "--remine-unit step); ANCE/ADORE.")] = None,
    remine_unit: Annotated[str | None, typer.Option(help="epoch or step: the unit of --remine-every (steps "
                                                    "without --max-steps: those of --epochs).")] = None,
    remine_config: Annotated[str | None, typer.Option(help="Recipe TOML whose [mine] table sets the re-mining "
                                                           "options (default: the mining manifest.json).")] = None,
    remine_judge: Annotated[str | None, typer.Option(help="Relabel judge run on every re-mined round "
                                                          "(cross-encoder:PATH, llm:URL@MODEL...).")] = None,
    remine_teacher: Annotated[str | None, typer.Option(help="Teacher that scores every re-mined round for --scores "
                                                            "teacher (default: the one that scored --data).")] = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Train a sentence-transformers embedder on mined negatives with a negmine loss.

    Wraps SentenceTransformerTrainer with no-duplicates batching, a seed, checkpoints in OUT/checkpoints, the final
    model in OUT/final and in-training nDCG@10 on a BEIR split. Flags override the "train" table of --config.

    Examples:

      negmine train --data runs/scifact-minilm/mined.jsonl --model minilm --loss infonce --out runs/scifact-infonce

      negmine train --config training/scifact-minilm.toml --loss soft-infonce --loss-arg alpha=1.0 --loss-arg t=0.1

      negmine train --data relabeled.jsonl --max-positives 4 --loss dice --loss-arg infonce_weight=1.0 --out runs/d
    """
    from negmine.config import build_config, read_toml
    from negmine.training import TrainConfig
    from negmine.training import train as run_training

    file_values = read_toml(config, "train") if config else {}
    loss_args = {**file_values.get("loss_args", {}), **_parse_loss_args(loss_arg)}
    if temperature is not None:
        loss_args["temperature"] = temperature
    overrides = dict(data=data, model=model, loss=loss, out=out, loss_args=loss_args or None,
                     reference_model=reference_model, max_positives=max_positives, num_negatives=num_negatives,
                     use_scores=use_scores, scores=scores, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                     learning_rate=learning_rate, max_seq_length=max_seq_length, seed=seed, eval_data=eval_data,
                     eval_split=eval_split, eval_steps=eval_steps, eval_max_queries=eval_max_queries,
                     eval_max_corpus=eval_max_corpus, save_steps=save_steps,
                     resume_from_checkpoint=resume_from_checkpoint, random_negatives=random_negatives,
                     corpus=corpus, gradient_checkpointing=gradient_checkpointing, precision=precision,
                     batch_sampler=batch_sampler,
                     ngame_cluster_size=ngame_cluster_size, adore=adore,
                     remine_every=remine_every, remine_unit=remine_unit, remine_config=remine_config,
                     remine_judge=remine_judge, remine_teacher=remine_teacher)
    cfg = build_config(TrainConfig, file_values, overrides, source=str(config or ""))
    if not cfg.data:
        raise typer.BadParameter("no training data: pass --data or set data in the --config file", param_hint="--data")
    if dry_run:
        print_config(cfg.to_dict())
        return
    if cfg.remine_every:
        from negmine.dynamic import train_dynamic

        result = train_dynamic(cfg)
    else:
        result = run_training(cfg)
    rows = [("rows", str(result.num_rows)), ("steps", str(result.steps)), ("model", str(result.model_dir))]
    for cost in getattr(result, "rounds", []):
        remine = f", re-mined in {cost.remine_seconds:.1f} s" if cost.remine_seconds is not None else ""
        rows.append((f"round {cost.round}", f"{cost.steps} steps in {cost.train_seconds:.1f} s{remine}"))
    rows += [(k, f"{v:.4f}") for k, v in sorted(result.metrics.items()) if "ndcg" in k or "recall" in k]
    print_table(f"negmine train → {cfg.out}", rows)
