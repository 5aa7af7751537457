"""SciFact quality under the dev protocol: zero-shot MiniLM, sentence-transformers' recipe (the peer) and negmine's.

The dev protocol (issue 18):

- a seeded 20 % of SciFact's train queries becomes a ``dev`` split, written into the run folder
  (``RUNS/_data/scifact/qrels/dev.tsv`` beside ``train-minus-dev.tsv``; corpus, queries and test qrels are links to
  the shared data, which is never written);
- every recipe, negmine's and the peers', mines and trains on ``train-minus-dev``;
- every finished recipe is scored on ``dev`` and on ``test``; the ``best`` row is the negmine recipe with the highest
  dev nDCG@10 on seed 12 among those measured, and nothing else is chosen on test; the report says how many recipes
  were compared on dev;
- rows are compared with the peer by a paired bootstrap over test queries x training seeds, for nDCG@10 and
  Recall@100, with Holm's correction across the rows of the table (one family per metric); single-seed rows are
  labelled.

Outputs: ``benchmarks/results/scifact.md`` and ``scifact.json`` (``rows``: name, role, selected_on, seeds, dev_seeds,
recipe, comparisons), and README's SciFact block between ``<!-- scifact-table:start -->`` and
``<!-- scifact-table:end -->``. Nothing in them is typed by hand; rows that were not run say so.

The ledger (``benchmarks/results/scifact_runs/``, committed): every finished evaluation (metrics and per-query
scores), training summary and teacher score table is copied there with its commit, hardware and load, and the report
reads the ledger wherever ``RUNS`` lacks a result. A run folder is a cache that a fresh machine no longer has; the
ledger is what makes rows measured in different sessions one table (a teacher pass of hours is replayed from its
score table, ``negmine score --teacher scores:FILE``, instead of being paid again).

Stages run through :class:`negmine.pipeline.Pipeline` into ``RUNS`` (``runs/scifact_dev``; ``--smoke``:
``runs/scifact_dev_smoke``): a stage with a manifest is skipped, an interrupted one resumes (embedding blocks, judge
sub-batches, training checkpoints), so the same command can be re-run until the grid is done::

    python benchmarks/scifact_quality.py --recipe protocol            # the whole protocol, one command (hours)
    python benchmarks/scifact_quality.py --recipe protocol --candidates infonce,infonce-pairs,cwcl
    python benchmarks/scifact_quality.py --recipe zero-shot,peer-baseline,infonce --seeds 12
    python benchmarks/scifact_quality.py --recipe best --seeds 12,13,14 --arguana
    python benchmarks/scifact_quality.py --table-only                 # rewrite the reports from what is on disk
    python benchmarks/scifact_quality.py --smoke --recipe zero-shot,peer-baseline,infonce   # CI: seconds

``protocol`` = zero-shot, then every candidate (default: every negmine row and the peers) on seed 12, then the
dev-chosen best, its ablation, the peer and the dev-chosen same-teacher peer on seeds 12, 13, 14. Relabeling rows
need the judge GGUF (``MODELS=~/.cache/negmine-models ../shared/models/fetch_models.sh qwen15``), stronger teachers
their weights under ``$NEGMINE_MODELS``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, replace_readme_block  # noqa: E402

#### constants
DATA_ROOT = Path(os.environ.get("NEGMINE_DATA", REPO.parent / "shared" / "data" / "beir"))
MODELS = Path(os.environ.get("NEGMINE_MODELS", Path.home() / ".cache" / "negmine-models")).expanduser()
JUDGE_GGUF = MODELS / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
RUNS = REPO / "runs" / "scifact_dev"
LEDGER = REPO / "benchmarks" / "results" / "scifact_runs"  # committed: every finished result, so sessions add up
SMOKE_RUNS = REPO / "runs" / "scifact_dev_smoke"
TABLE = REPO / "benchmarks" / "results" / "scifact.md"
README = REPO / "README.md"
README_START, README_END = "<!-- scifact-table:start -->", "<!-- scifact-table:end -->"
STUDENT = "minilm"
PEER = "peer-baseline"
ZERO_SHOT = "zero-shot"
SEED = 12  # every candidate runs this seed; the dev choice compares rows on it
PROTOCOL_SEEDS = (12, 13, 14)
DEV_FRACTION, DEV_SEED = 0.2, 0
TRAIN_SPLIT, DEV_SPLIT = "train-minus-dev", "dev"
PSEUDO_SPLIT = "pseudo"  # the qrels split of pseudo queries (negmine.pseudo)
K_VALUES = (10, 100)
METRICS = ("ndcg@10", "recall@100")
SELECT_METRIC = "ndcg@10"
RELATIVE_MARGIN = 0.05  # ST relative_margin 0.05 == negmine TopK-PercPos 0.95
SPARE_NEGATIVES = 3  # mined beyond num_negatives so that rows keep N negatives after false-negative filtering
JUDGES = {"pointwise": "llm-yes", "arhn": "llm"}  # false-negative handling -> negmine judge kind
N_RESAMPLES = 10_000
# issue 23's targets for the dev-chosen best row, on SciFact test nDCG@10 (seed-aware test, Holm p < ALPHA)
TARGETS = {"vs_peer": 0.020, "vs_peer_teacher": 0.010, "arguana_below_zero_shot": 0.010, "moonshot": 0.72,
           "seeds": 3, "alpha": 0.05}
TEACHER_MAX_SEQ_LENGTH = 512  # the scorer's token cap (EmbeddingGemma's context is 2,048; SciFact abstracts fit)


@dataclass(frozen=True)
class Scale:
    """How big a run is: the full experiment or the CI smoke mode."""

    smoke: bool
    train_queries: int | None  # subsample train-minus-dev (None: all)
    train_corpus: int | None  # subsample the corpus the negatives are mined from (None: all 5,183 docs)
    eval_queries: int | None
    eval_corpus: int | None
    range_max: int
    num_negatives: int
    batch_size: int
    epochs: float
    max_steps: int
    max_seq_length: int | None  # training and mining; evaluation uses the model's own unless smoke
    save_steps: int
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1


FULL = Scale(False, None, None, None, None, range_max=50, num_negatives=5, batch_size=32, epochs=1.0, max_steps=-1,
             max_seq_length=256, save_steps=5)
SMOKE = Scale(True, 8, 48, 8, 48, range_max=20, num_negatives=2, batch_size=2, epochs=1.0, max_steps=2,
              max_seq_length=64, save_steps=0)


@dataclass(frozen=True)
class Recipe:
    """One row of the table.

    Args:
        name: the row's name (``--recipe``) and its folder under ``RUNS``.
        kind: ``zero-shot`` (no training), ``peer`` (sentence-transformers mining + MNRL) or ``negmine``.
        teacher: the retriever that mines the negatives (and gives the retriever scores).
        scorer: a teacher that re-scores the mined negatives (``negmine score``); the loss then sees its scores.
        false_negatives: ``none``, ``pointwise`` (P(yes) LLM judge) or ``arhn`` (two-stage ARHN relabel + filter).
        loss: a :data:`negmine.losses.LOSSES` name (``MultipleNegativesRankingLoss`` for the peers).
        loss_args: the loss's keyword arguments, as ``(name, value)`` pairs.
        reference_model: a frozen model for the loss (CWCL's paper weights compare passages through it).
        max_positives: positive columns per training row (relabeled extra positives use the spare ones).
        question: what the row answers (shown in the table).
        base: the row this one changes one thing of (the best row's base is its ablation).
        train_args: :class:`~negmine.training.TrainConfig` options of the row, as ``(name, value)`` pairs (the
            training-dynamics levers: random negatives, NGAME batches, re-mining, ADORE).
        pseudo: ``(method, n)``: ``n`` pseudo queries (:mod:`negmine.pseudo`) made from SciFact documents join the
            train-minus-dev queries for mining, scoring and training.
    """

    name: str
    kind: str = "negmine"
    teacher: str = STUDENT
    scorer: str | None = None
    false_negatives: str = "none"
    loss: str = "infonce"
    loss_args: tuple[tuple[str, Any], ...] = (("temperature", 0.05),)
    reference_model: str | None = None
    max_positives: int = 2
    question: str = ""
    base: str = ""
    train_args: tuple[tuple[str, Any], ...] = ()
    pseudo: tuple[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.pseudo is None:
            del out["pseudo"]  # the rows trained before the option keep their recorded recipe
        out["loss_args"] = dict(self.loss_args)
        if self.train_args:
            out["train_args"] = dict(self.train_args)
        else:
            del out["train_args"]
        return out


RECIPES: tuple[Recipe, ...] = (
    Recipe(ZERO_SHOT, kind="zero-shot", loss="-", loss_args=(), question="the untrained student"),
    Recipe("teacher-gemma", kind="zero-shot", teacher="embeddinggemma", loss="-", loss_args=(),
           question="the teacher itself (EmbeddingGemma-300m, its prompts, 512 tokens): the ceiling a distilled "
                    "student can approach"),
    Recipe(PEER, kind="peer", loss="MultipleNegativesRankingLoss", loss_args=(("scale", 20.0),), max_positives=1,
           question="sentence-transformers mine_hard_negatives + MNRL (the peer)"),
    Recipe("peer-gemma", kind="peer", teacher="embeddinggemma", loss="MultipleNegativesRankingLoss",
           loss_args=(("scale", 20.0),), max_positives=1,
           question="the peer's recipe with the teacher (EmbeddingGemma-300m, its prompts) mining"),
    Recipe("peer-gemma-distill", kind="peer", teacher="embeddinggemma", loss="DistillKLDivLoss",
           loss_args=(("temperature", 0.05),), max_positives=1,
           question="the same-teacher peer distilling: the teacher's mining scores (output_scores) and "
                    "DistillKLDivLoss, both temperatures 0.05 as negmine's listwise rows"),
    Recipe("peer-mpnet", kind="peer", teacher="mpnet", loss="MultipleNegativesRankingLoss",
           loss_args=(("scale", 20.0),), max_positives=1,
           question="the peer's recipe with the stronger teacher (all-mpnet-base-v2) mining"),
    Recipe("infonce", question="negmine mining + multi-positive InfoNCE (up to 2 positives per row), student as "
                               "teacher"),
    Recipe("infonce-pairs", max_positives=1, question="the same, one row per (query, positive) as the peer builds "
                                                      "them", base="infonce"),
    Recipe("mpnet-infonce", teacher="mpnet", question="a stronger teacher (all-mpnet-base-v2) mines", base="infonce"),
    Recipe("gemma-infonce", teacher="embeddinggemma", question="a stronger teacher (EmbeddingGemma-300m)",
           base="infonce"),
    # a teacher stronger than the student (issue 23): EmbeddingGemma-300m scores the student's mined negatives
    # (max_seq_length 512) and the student distils its listwise distribution over [positives, negatives]
    Recipe("gemma-listwise", scorer="embeddinggemma", loss="listwise",
           loss_args=(("temperature", 0.05), ("teacher_temperature", 0.05), ("kl_weight", 1.0),
                      ("infonce_weight", 1.0)),
           question="EmbeddingGemma scores the student's negatives; listwise KL + InfoNCE", base="infonce"),
    Recipe("gemma-listwise-kl", scorer="embeddinggemma", loss="listwise",
           loss_args=(("temperature", 0.05), ("teacher_temperature", 0.05), ("kl_weight", 1.0),
                      ("infonce_weight", 0.0)),
           question="the same, pure distillation (no InfoNCE term)", base="gemma-listwise"),
    Recipe("gemma-listwise-t002", scorer="embeddinggemma", loss="listwise",
           loss_args=(("temperature", 0.05), ("teacher_temperature", 0.02), ("kl_weight", 1.0),
                      ("infonce_weight", 1.0)),
           question="a sharper teacher distribution (teacher temperature 0.02)", base="gemma-listwise"),
    Recipe("gemma-mined-listwise", teacher="embeddinggemma", loss="listwise",
           loss_args=(("temperature", 0.05), ("teacher_temperature", 0.05), ("kl_weight", 1.0),
                      ("infonce_weight", 1.0)),
           question="the teacher mines as well (its retrieval scores are the soft labels)", base="gemma-listwise"),
    Recipe("gemma-margin-mse", scorer="embeddinggemma", loss="margin-mse", loss_args=(("similarity", "cosine"),),
           question="MarginMSE on the teacher's score margins (Hofstätter et al.)", base="gemma-listwise"),
    Recipe("pointwise-infonce", false_negatives="pointwise", question="pointwise P(yes) judge, relabel + filter",
           base="infonce"),
    Recipe("arhn-infonce", false_negatives="arhn", question="ARHN relabel + filter", base="infonce"),
    Recipe("soft-infonce", loss="soft-infonce", loss_args=(("temperature", 0.05), ("alpha", 1.0), ("t", 0.1)),
           question="teacher-score weights on the negatives", base="infonce"),
    Recipe("soft-infonce-t002", loss="soft-infonce", loss_args=(("temperature", 0.05), ("alpha", 1.0), ("t", 0.02)),
           question="sharper teacher weights", base="infonce"),
    Recipe("dice", loss="dice", loss_args=(("temperature", 0.05), ("infonce_weight", 1.0), ("dice_weight", 0.5)),
           question="InfoNCE + self-adjusting Dice", base="infonce"),
    # the CWCL class with reference="labels": the teacher's query-document scores as soft targets; that is
    # soft-label distillation, not the paper's CWCL (whose weights compare passages inside one modality)
    Recipe("soft-label-distillation", loss="cwcl",
           loss_args=(("temperature", 0.05), ("power", 4.0), ("rescale", False)),
           question="teacher query-document scores as soft targets (was the 'cwcl' row)", base="infonce"),
    # the paper's CWCL: weights from the cosine between the row's positive and each candidate (one modality: two
    # passages) through a frozen encoder, here the initial student; rescale (r + 1) / 2, power 1 (the paper's form)
    Recipe("cwcl", loss="cwcl", loss_args=(("temperature", 0.05),), reference_model=STUDENT,
           question="CWCL's paper weights: positive-to-candidate cosine through the frozen initial student",
           base="infonce"),
    Recipe("mixing", loss="mixing", loss_args=(("temperature", 0.05), ("num_hardest", 16),
                                               ("num_negative_mixes", 16), ("num_query_mixes", 4)),
           question="synthetic hard negatives (MoCHi)", base="infonce"),
    Recipe("mixing-light", loss="mixing", loss_args=(("temperature", 0.05), ("num_hardest", 16),
                                                     ("num_negative_mixes", 4), ("num_query_mixes", 0)),
           question="4 negative mixes, no query mixes", base="infonce"),
    Recipe("mpnet-arhn-infonce", teacher="mpnet", false_negatives="arhn",
           question="stronger teacher + ARHN (the guess made before any run)", base="mpnet-infonce"),
)
# issue 20's training-dynamics levers, each one change on top of DYNAMICS_BASE (the dev-chosen best when they were
# added); re-mined rounds are scored by the teacher that scored the base's negatives (EmbeddingGemma at 512 tokens)
DYNAMICS_BASE = "gemma-listwise"
DYNAMICS = (
    # 9 texts per row at batch 32 need over 24 GB of activations on a CPU: checkpointing them gives the same
    # gradients (tests/test_training.py) in less memory, so the row still changes one thing of the method
    ("random-negatives", "2 random corpus negatives per row beside the hard ones (STAR)",
     (("random_negatives", 2), ("gradient_checkpointing", True))),
    ("ngame", "batches of queries close in the start model's space (NGAME)", (("batch_sampler", "ngame"),)),
    ("remine", "re-mined with the student after 10 of the 20 steps, new negatives teacher-scored (ANCE-lite)",
     (("remine_every", 10), ("remine_unit", "step"), ("remine_teacher", "embeddinggemma"))),
    ("adore", "query side trained against frozen documents, re-mined after 10 steps (ADORE)",
     (("adore", True), ("remine_every", 10), ("remine_unit", "step"), ("remine_teacher", "embeddinggemma"))),
)


def _dynamics_rows(base: Recipe) -> tuple[Recipe, ...]:
    return tuple(replace(base, name=f"{base.name}-{name}", question=question, base=base.name, train_args=args)
                 for name, question, args in DYNAMICS)


def _recipe(name: str) -> Recipe:
    return next(r for r in RECIPES if r.name == name)


RECIPES += _dynamics_rows(_recipe(DYNAMICS_BASE))
# training length: one epoch is 20 steps at lr 2e-5, which moves the student little; a row's train_args override the
# scale's training options (the peer keeps one epoch: a candidate that wins on dev needs its peer at equal length)
RECIPES += (replace(_recipe("gemma-listwise"), name="gemma-listwise-3ep",
                    question="three epochs instead of one (60 steps)", base="gemma-listwise",
                    train_args=(("epochs", 3.0),)),)
# mixed precision: the same row trained in bf16 (autocast passes, float32 weights and loss math): what bf16 costs in
# quality (its speed is benchmarks/train_precision.py's: 0.93x fp32 on a Xeon without AMX)
RECIPES += (replace(_recipe("gemma-listwise"), name="gemma-listwise-bf16", base="gemma-listwise",
                    question="the same training in bf16 mixed precision", train_args=(("precision", "bf16"),)),)
# more in-domain queries (issue 23): the student distils its teacher on 647 labelled queries; pseudo queries made from
# 1,000 SciFact documents (drawn with a seed, no labels read) add 1,000 more, scored by the same teacher (GPL's recipe
# with a bi-encoder teacher); about 1,650 rows train about 52 steps, near the 60 of the three-epoch row
RECIPES += (replace(_recipe("gemma-listwise"), name="gemma-listwise-pseudo", pseudo=("sentence", 1000),
                    question="1,000 pseudo queries (a sentence of a SciFact document each, ICT) join the train "
                             "queries", base="gemma-listwise"),
            replace(_recipe("gemma-listwise"), name="gemma-listwise-gpl", pseudo=("llm", 1000),
                    question="1,000 pseudo queries written by Qwen2.5-Coder-1.5B from SciFact documents (GPL's "
                             "doc2query step) join the train queries", base="gemma-listwise"))
BY_NAME = {r.name: r for r in RECIPES}
CANDIDATES = tuple(r.name for r in RECIPES if r.kind == "negmine")  # the rows `best` is chosen among


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="zero-shot,peer-baseline,infonce",
                        help=f"comma-separated rows ({', '.join(BY_NAME)}); 'best' = the dev-chosen row; 'all'; "
                             "'protocol' = the whole dev protocol")
    parser.add_argument("--candidates", default=None,
                        help="with --recipe protocol: the negmine rows compared on dev (default: all of them)")
    parser.add_argument("--seeds", default=None, help=f"comma-separated seeds for trained rows (default {SEED})")
    parser.add_argument("--smoke", action="store_true", help="CI mode: a handful of queries, 2 steps, 64 tokens")
    parser.add_argument("--arguana", action="store_true", help="also evaluate on ArguAna test (out of domain)")
    parser.add_argument("--relabel-queries", type=int, default=None,
                        help="relabel only the first N train queries (the rest train on unjudged negatives)")
    parser.add_argument("--judge-model", default=str(JUDGE_GGUF), help="GGUF file or model folder of the LLM judge")
    parser.add_argument("--data-root", default=str(DATA_ROOT), help="folder holding scifact/ and arguana/")
    parser.add_argument("--runs", default=None, help=f"output root (default {RUNS.relative_to(REPO)}, smoke: "
                                                     f"{SMOKE_RUNS.relative_to(REPO)})")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default $NEGMINE_CACHE)")
    parser.add_argument("--ledger", default=None,
                        help=f"where finished results are kept (default {LEDGER.relative_to(REPO)}; smoke: "
                             "RUNS/ledger)")
    parser.add_argument("--out-table", default=None,
                        help=f"Markdown report (default {TABLE.relative_to(REPO)}; smoke: RUNS/scifact.md); the "
                             ".json twin goes beside it")
    parser.add_argument("--readme", default=None,
                        help="README whose SciFact block to rewrite (default README.md; smoke: none; '-': none)")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the reports from what is on disk")
    return parser.parse_args(argv)


def select_recipes(spec: str, runs: Path | None = None, ledger: Path | None = None) -> list[Recipe]:
    """``--recipe`` -> recipes, in table order; ``best`` resolves to the dev-chosen row, ``all`` to every row."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if "all" in names:
        return list(RECIPES)
    if "best" in names:
        best = choose_best(runs or RUNS, ledger=ledger)["best"]
        if best is None:
            raise SystemExit("no negmine recipe has a dev score yet: run the candidates on seed "
                             f"{SEED} first (--recipe protocol does)")
        names = [best if n == "best" else n for n in names]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}, best, all, "
                         "protocol")
    return [r for r in RECIPES if r.name in names]


def seeds_of(recipe: Recipe, override: str | None) -> tuple[int, ...]:
    """The seeds a row runs with: ``--seeds``, else :data:`SEED`; zero-shot has nothing random (one folder)."""
    if recipe.kind == "zero-shot":
        return (SEED,)
    return tuple(int(s) for s in override.split(",")) if override else (SEED,)


#### context shared by the steps
class Context:
    """Options, data, the embedding cache and the stage runner of one invocation (data loaded once, lazily)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from negmine.encoders import EmbeddingCache
        from negmine.pipeline import Pipeline

        self.args = args
        self.scale = SMOKE if args.smoke else FULL
        self.runs = Path(args.runs) if args.runs else (SMOKE_RUNS if args.smoke else RUNS)
        self.shared = self.runs / "_shared"
        self.ledger = Path(args.ledger) if args.ledger else (self.runs / "ledger" if args.smoke else LEDGER)
        self.cache = EmbeddingCache(args.cache_dir)
        self.data_root = Path(args.data_root)
        self._data: dict[tuple[str, str], Any] = {}
        self.pipeline = Pipeline(on_event=_print_event)

    @property
    def log(self) -> list[dict[str, Any]]:
        return self.pipeline.log

    def scifact_folder(self) -> Path:
        """The run's SciFact folder with the carved dev split (carved on first use; seeded, idempotent)."""
        from negmine.pipeline import carve_dev_split

        split = carve_dev_split(self.data_root / "scifact", self.runs / "_data" / "scifact", fraction=DEV_FRACTION,
                                seed=DEV_SEED)
        kept = self.ledger / "split.json"
        if not kept.is_file():
            _ledger_copy(split.folder / "split.json", kept)
        return split.folder

    def data(self, name: str, split: str, pseudo: tuple[str, int] | None = None) -> Any:
        """SciFact (from the run's dev-split folder) or ArguAna ``split``, subsampled (seeded) in smoke mode; with
        ``pseudo``, SciFact's train-minus-dev queries and the pseudo queries (:func:`pseudo_folder`)."""
        key = (name, split, pseudo)
        if key not in self._data:
            from negmine.data import load_data
            from negmine.evaluation import subsample

            if pseudo is not None:
                folder, split = pseudo_folder(self, *pseudo), f"{TRAIN_SPLIT}+{PSEUDO_SPLIT}"
            else:
                folder = self.scifact_folder() if name == "scifact" else self.data_root / name
            data = load_data(folder, split, unknown_qrels="keep" if name == "arguana" else "error")
            queries, corpus = ((self.scale.train_queries, self.scale.train_corpus) if split.startswith(TRAIN_SPLIT)
                               else (self.scale.eval_queries, self.scale.eval_corpus))
            if queries is not None or corpus is not None:
                data = subsample(data, queries, corpus, seed=0)
            self._data[key] = data
        return self._data[key]


def _print_event(event: dict[str, Any]) -> None:
    print(f"[{event['status']} at {event['elapsed']:.1f} s] {event['step']}: {event['path']}", flush=True)


#### pseudo queries
def pseudo_folder(ctx: Context, method: str, n: int) -> Path:
    """The run's SciFact folder plus ``n`` pseudo queries (:mod:`negmine.pseudo`) from documents drawn with seed 0
    (``llm``: written by the judge model, Qwen2.5-Coder-1.5B), merged with train-minus-dev as
    ``train-minus-dev+pseudo``; a resumable stage (an ``llm`` run keeps every answer in its folder). The smoke mode
    makes at most 4."""
    n = min(n, 4) if ctx.scale.smoke else n
    out = ctx.shared / f"pseudo-{method}-{n}"

    def run(out: Path) -> dict[str, Any]:
        from negmine.pseudo import PseudoConfig, make_pseudo_queries

        cfg = PseudoConfig(data=str(ctx.scifact_folder()), out=str(out), method=method, n=n, seed=0,
                           split=PSEUDO_SPLIT, merge=TRAIN_SPLIT, model=str(ctx.args.judge_model)
                           if method == "llm" else None, show_progress_bar=not ctx.scale.smoke)
        return make_pseudo_queries(cfg).stats

    ctx.pipeline.run(f"pseudo {method} {n}", out, run, config={"method": method, "n": n, "seed": 0})
    return out


#### mining
def mine_negmine(ctx: Context, teacher: str, pseudo: tuple[str, int] | None = None) -> Path:
    """negmine TopK-PercPos mining of SciFact train-minus-dev (and ``pseudo``'s queries) with ``teacher``; returns the
    ``mined.jsonl`` path."""
    tag = pseudo_folder(ctx, *pseudo).name if pseudo else None  # pseudo-METHOD-N (N as made: 4 in smoke mode)
    out = ctx.shared / (f"mine-{teacher}-{tag}" if tag else f"mine-{teacher}")
    scale = ctx.scale

    def run(out: Path) -> dict[str, Any]:
        from negmine.encoders import load_encoder
        from negmine.mining import mine_hard_negatives

        # the student at its own length; a teacher at the scorer's cap, as the peer mines and the teacher row
        # evaluates (one corpus encode in the cache for all three)
        cap = scale.max_seq_length if scale.smoke else (None if teacher == STUDENT else TEACHER_MAX_SEQ_LENGTH)
        encoder = load_encoder(teacher, max_seq_length=cap)
        result = mine_hard_negatives(ctx.data("scifact", TRAIN_SPLIT, pseudo), encoder, out=str(out), cache=ctx.cache,
                                     strategy="perc-pos", percentage=1 - RELATIVE_MARGIN, range_max=scale.range_max,
                                     num_negatives=scale.num_negatives + SPARE_NEGATIVES, sampling="top",
                                     too_few="keep", format="flag", output_scores=True, seed=0,
                                     show_progress_bar=not scale.smoke)
        return {"teacher": teacher, "split": TRAIN_SPLIT, "queries": len(result.records)}

    config = {"teacher": teacher, "split": TRAIN_SPLIT, **({"pseudo": tag} if tag else {})}
    ctx.pipeline.run(f"mine {teacher}" + (f" {tag}" if tag else ""), out, run, config=config)
    return out / "mined.jsonl"


def mine_peer(ctx: Context, teacher: str, output_scores: bool = False) -> Path:
    """sentence-transformers ``mine_hard_negatives`` as its docs show it (:func:`peers.mine_peer_teacher`), on
    train-minus-dev; returns the n-tuples (with the teacher's ``scores`` column for the distilling peer)."""
    name = "st-mine" if teacher == STUDENT else f"st-mine-{teacher}"
    out = ctx.shared / (f"{name}-scores" if output_scores else name)
    scale = ctx.scale

    def run(out: Path) -> dict[str, Any]:
        from peers import PeerMining, mine_peer_teacher

        # the student mines at its training length; a teacher at the scorer's cap, with its own prompts; a teacher's
        # corpus is encoded once through negmine's resumable cache and handed to sentence-transformers (the zero-shot
        # teacher row and negmine's teacher mining read the same cache entry)
        cap = scale.max_seq_length if teacher == STUDENT or scale.smoke else TEACHER_MAX_SEQ_LENGTH
        settings = PeerMining(range_max=scale.range_max, relative_margin=RELATIVE_MARGIN,
                              num_negatives=scale.num_negatives, max_seq_length=cap)
        data = ctx.data("scifact", TRAIN_SPLIT)
        mined = mine_peer_teacher(data, teacher, output_scores=output_scores, settings=settings,
                                  verbose=not scale.smoke, cache_folder=ctx.shared / "st-embeddings" / teacher,
                                  seed_cache=None if teacher == STUDENT else ctx.cache)
        mined.dataset.to_json(str(out / "ntuple.jsonl"))
        return {"teacher": teacher, "split": TRAIN_SPLIT, "rows": len(mined.dataset), **mined.prompts,
                "output_scores": output_scores, "corpus_embeddings_from_negmine_cache": mined.from_negmine_cache}

    config = {"teacher": teacher, "split": TRAIN_SPLIT, **({"output_scores": True} if output_scores else {})}
    ctx.pipeline.run(f"st mine {teacher}", out, run, config=config)
    return out / "ntuple.jsonl"


#### teacher scoring
def score_teacher(ctx: Context, mined: Path, scorer: str) -> Path:
    """``negmine score`` of the mined file with ``scorer`` (a bi-encoder preset, ``TEACHER_MAX_SEQ_LENGTH`` tokens);
    returns the scored ``mined.jsonl``. The score table goes to the ledger; when the ledger already holds one for
    this mined file, it is replayed (``scores:FILE``) instead of loading the teacher."""
    out = ctx.shared / f"score-{mined.parent.name}-{scorer}"
    table = ctx.ledger / "teacher_scores" / f"{mined.parent.name}-{scorer}.jsonl"

    def run(out: Path) -> dict[str, Any]:
        from negmine.scoring import SCORE_TABLE, ScoreConfig, score_mined

        replay = table.is_file()
        spec = f"scores:{table}" if replay else scorer
        cfg = ScoreConfig(mined=str(mined), teacher=spec, out=str(out),
                          max_seq_length=ctx.scale.max_seq_length if ctx.scale.smoke else TEACHER_MAX_SEQ_LENGTH,
                          batch_size=16, cache_dir=ctx.args.cache_dir, show_progress_bar=not ctx.scale.smoke)
        result = score_mined(cfg)
        if not replay:
            _ledger_write(table.with_suffix(".manifest.json"), {"scorer": scorer, "mined": mined.parent.name,
                                                                "stats": result.stats,
                                                                "teacher_fingerprint": result.fingerprint})
            _ledger_copy(out / SCORE_TABLE, table)
        return {"scorer": scorer, "replayed_from": str(table.relative_to(REPO)) if replay and
                table.is_relative_to(REPO) else (str(table) if replay else None), "stats": result.stats}

    ctx.pipeline.run(f"score {mined.parent.name} {scorer}", out, run, config={"scorer": scorer}, inputs=[mined])
    return out / "mined.jsonl"


#### the ledger
@functools.cache
def _started_at_commit() -> str:
    """The commit of the code this process runs (read once: a checkout moving during a run of hours is not it)."""
    from negmine.pipeline import git_commit

    return git_commit()


def _provenance() -> dict[str, Any]:
    from negmine.pipeline import hardware_info, hardware_text

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"command": " ".join(["python", "benchmarks/scifact_quality.py", *sys.argv[1:]]),
            "commit": _started_at_commit(),
            "hardware_text": hardware_text(hardware_info()), "load_average": round(load, 2) if load is not None
            else None}


def _ledger_write(path: Path, data: dict[str, Any]) -> None:
    from negmine.io import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**data, "provenance": _provenance()})


def _ledger_copy(source: Path, target: Path) -> None:
    from negmine.io import atomic_open

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target) as handle:
        handle.write(source.read_text(encoding="utf-8"))


def record(ctx: Context, recipe: Recipe, seed: int, kind: str, stage_dir: Path, result_file: str) -> None:
    """Copy a finished stage's result (``kind``: ``train``, ``dev``, ``test`` or ``arguana``) into the ledger."""
    data, stage = _read(stage_dir / result_file), _read(stage_dir / "stage.json")
    target = ctx.ledger / recipe.name / str(seed) / f"{kind}.json"
    kept = _read(target)
    if data is None or (kept is not None and (kept["data"], kept["stage"]) == (data, stage)):
        return  # nothing finished, or already kept: a re-run rewrites nothing
    _ledger_write(target, {"recipe": recipe.name, "seed": seed, "result": kind, "stage": stage, "data": data})


#### false-negative handling
def relabel(ctx: Context, mined: Path, teacher: str, method: str) -> Path:
    """Judge the mined negatives (``pointwise`` or ``arhn``) with the ARHN rules (relabel + filter); returns a
    ``mined.jsonl``-format file holding every train query (unjudged ones unchanged with ``--relabel-queries``)."""
    limit = ctx.args.relabel_queries
    judge_name = Path(ctx.args.judge_model).name.removesuffix(".gguf")
    out = ctx.shared / f"relabel-{teacher}-{method}-{judge_name}{f'-q{limit}' if limit else ''}"
    spec = f"{JUDGES[method]}:{ctx.args.judge_model}"

    def run(out: Path) -> dict[str, Any]:
        from negmine.data.mined import read_mined
        from negmine.io import write_jsonl
        from negmine.pipeline import merge_partial
        from negmine.relabel import load_judge, relabel_file

        # judge answers are cached per sub-batch in the shared cache: a killed relabel resumes there
        judge = load_judge(spec, cache=str(ctx.shared / f"judge-cache-{method}.jsonl"))
        summary = relabel_file(mined, judge, out, mode="both", on_unsure="drop", limit=limit,
                               show_progress_bar=not ctx.scale.smoke, config={"judge_spec": spec})
        judged = [r.to_dict() for r in read_mined(out / "mined.jsonl")]
        records = merge_partial([r.to_dict() for r in read_mined(mined)], judged)
        write_jsonl(out / "train.jsonl", records)
        return {"judge": spec, "queries_judged": len(judged), "queries": len(records), "summary": summary}

    ctx.pipeline.run(f"relabel {teacher} {method}", out, run, config={"judge": spec, "limit": limit},
                     inputs=[mined])
    return out / "train.jsonl"


#### training
def train_config(ctx: Context, recipe: Recipe, data: Path, out: Path, seed: int) -> Any:
    """The :class:`~negmine.training.TrainConfig` of a row (the peers borrow it for their training arguments)."""
    from negmine.pipeline import latest_checkpoint
    from negmine.training import TrainConfig

    scale = ctx.scale
    negmine_row = recipe.kind == "negmine"
    options: dict[str, Any] = dict(
        data=str(data), model=STUDENT, loss=recipe.loss if negmine_row else "infonce", out=str(out),
        loss_args=dict(recipe.loss_args) if negmine_row else {},
        reference_model=recipe.reference_model if negmine_row else None, max_positives=recipe.max_positives,
        num_negatives=scale.num_negatives, use_scores=True,
        scores="teacher" if negmine_row and recipe.scorer else "retriever", epochs=scale.epochs,
        max_steps=scale.max_steps, batch_size=scale.batch_size, learning_rate=scale.learning_rate,
        warmup_ratio=scale.warmup_ratio, max_seq_length=scale.max_seq_length, seed=seed,
        save_steps=scale.save_steps, save_total_limit=2, logging_steps=1 if scale.smoke else 5,
        resume_from_checkpoint=latest_checkpoint(out / "checkpoints"), show_progress_bar=not scale.smoke)
    options.update(recipe.train_args if negmine_row else ())  # the row's own options win over the scale's
    if options.get("random_negatives"):
        # drawn from the whole SciFact corpus, named here: a mining manifest written before it recorded its data's
        # origin, or a smoke run's subsample, names no folder to reload
        options["corpus"] = str(ctx.data_root / "scifact")
    return TrainConfig(**options)


def train_negmine(cfg: Any, data: Any = None) -> tuple[int, int]:
    """``negmine.training.train`` (``negmine.dynamic.train_dynamic`` when the row re-mines ``data``, the
    :class:`~negmine.data.RetrievalData` mined: the mining stage took it in memory, so its manifest cannot reload it);
    returns (rows, steps)."""
    if cfg.remine_every:
        from negmine.dynamic import train_dynamic

        # rounds restart their trainer, so a stopped dynamic row starts over (no checkpoint to resume)
        dynamic = train_dynamic(replace(cfg, resume_from_checkpoint=None), data=data)
        return len(dynamic.records), dynamic.steps
    from negmine.training import train

    result = train(cfg)
    return result.num_rows, result.steps


def train_peer(cfg: Any, recipe: Recipe) -> tuple[int, int]:
    """The peer's sentence-transformers loss (:func:`peers.train_peer_teacher`) on its n-tuples, with the same trainer
    arguments as negmine's rows (no-duplicates batches, seed, warm-up); returns (rows, steps)."""
    from datasets import Dataset
    from peers import train_peer_teacher

    rows = [json.loads(line) for line in Path(cfg.data).read_text(encoding="utf-8").splitlines() if line.strip()]
    return train_peer_teacher(Dataset.from_list(rows), cfg, recipe.loss, dict(recipe.loss_args),
                              role="peer" if recipe.teacher == STUDENT else "peer-teacher")


def train_row(ctx: Context, recipe: Recipe, data: Path, seed: int) -> Path:
    """Train one row and seed into ``<recipe>/<seed>/train`` (resuming from its newest checkpoint); returns the
    final model folder."""
    out = ctx.runs / recipe.name / str(seed) / "train"

    def run(out: Path) -> dict[str, Any]:
        cfg = train_config(ctx, recipe, data, out, seed)
        if recipe.kind == "peer":
            rows, steps = train_peer(cfg, recipe)
        else:  # a re-mining row mines again the data its mining stage took (loaded only for those rows)
            rows, steps = train_negmine(cfg, ctx.data("scifact", TRAIN_SPLIT, recipe.pseudo) if cfg.remine_every
                                        else None)
        return {"recipe": recipe.name, "seed": seed, "rows": rows, "steps": steps,
                "resumed_from": cfg.resume_from_checkpoint, "train_config": cfg.to_dict()}

    ctx.pipeline.run(f"train {recipe.name} seed {seed}", out, run, config=recipe.to_dict(), inputs=[data])
    return out / "final"


#### evaluation
def evaluate_row(ctx: Context, model: str, dataset: str, split: str, out: Path) -> Path:
    """nDCG@10 / Recall@100 (+ per-query scores and the run) of ``model`` on ``dataset`` ``split`` into ``out``
    (a trained student or the student preset at its own length; another preset, a teacher, at the scorer's cap)."""
    teacher = model in {r.teacher for r in RECIPES} - {STUDENT}

    def run(out: Path) -> dict[str, Any]:
        from negmine.evaluation import evaluate_beir

        cap = ctx.scale.max_seq_length if ctx.scale.smoke else (TEACHER_MAX_SEQ_LENGTH if teacher else None)
        result = evaluate_beir(model, ctx.data(dataset, split), split, k_values=K_VALUES, cache=ctx.cache,
                               max_seq_length=cap, batch_size=16 if teacher else 32,
                               show_progress_bar=not ctx.scale.smoke)
        result.config["smoke"] = ctx.scale.smoke
        result.save(out)
        return {"dataset": dataset, "split": split, "metrics": result.metrics}

    ctx.pipeline.run(f"eval {dataset} {split}", out, run, config={"model": model, "dataset": dataset,
                                                                  "split": split})
    return out / "metrics.json"


def training_data(ctx: Context, recipe: Recipe) -> Path:
    """Mine (and relabel) for a row; returns the file its training reads."""
    if recipe.kind == "peer":
        from peers import needs_scores

        return mine_peer(ctx, recipe.teacher, output_scores=needs_scores(recipe.loss))
    mined = mine_negmine(ctx, recipe.teacher, recipe.pseudo)
    if recipe.false_negatives != "none":
        mined = relabel(ctx, mined, recipe.teacher, recipe.false_negatives)
    return mined if recipe.scorer is None else score_teacher(ctx, mined, recipe.scorer)


def run_recipe(ctx: Context, recipe: Recipe, seeds: Sequence[int]) -> None:
    """mine (cached) -> [relabel] -> train -> dev and test (and ArguAna) evaluation, for each seed."""
    data = None if recipe.kind == "zero-shot" else training_data(ctx, recipe)
    for seed in seeds:
        folder = ctx.runs / recipe.name / str(seed)
        if data is None:
            model = recipe.teacher  # zero-shot: the student, or the teacher as a reference
        else:
            model = str(train_row(ctx, recipe, data, seed))
            record(ctx, recipe, seed, "train", folder / "train", "stage.json")
        evaluations = [("dev", "scifact", DEV_SPLIT), ("test", "scifact", "test")]
        for kind, dataset, split in evaluations + ([("arguana", "arguana", "test")] if ctx.args.arguana else []):
            evaluate_row(ctx, model, dataset, split, folder / f"eval-{kind}")
            record(ctx, recipe, seed, kind, folder / f"eval-{kind}", "metrics.json")


def run_protocol(ctx: Context, candidates: Sequence[str] | None) -> str:
    """Zero-shot; every candidate and the peers on seed 12; then the dev-chosen best, its ablation, the peer and the
    dev-chosen same-teacher peer (:func:`same_teacher_peer`) on :data:`PROTOCOL_SEEDS`. Returns the best row's
    name."""
    names = list(candidates) if candidates else list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"--candidates must be negmine rows ({', '.join(CANDIDATES)}); got {', '.join(unknown)}")
    run_recipe(ctx, BY_NAME[ZERO_SHOT], (SEED,))
    for recipe in RECIPES:
        if recipe.kind == "peer" or recipe.name in names:
            run_recipe(ctx, recipe, (SEED,))
    best = choose_best(ctx.runs, names, ctx.ledger)["best"]
    peers = {r.name: collect(ctx.runs, r, ctx.ledger) for r in RECIPES if r.kind == "peer"}
    rival = same_teacher_peer(peers, best)["chosen"] if best else None  # the same-teacher peer, chosen on dev
    for name in dict.fromkeys([PEER, rival, best, BY_NAME[best].base if best else None]):
        if name:
            run_recipe(ctx, BY_NAME[name], PROTOCOL_SEEDS)
    return best


#### results on disk
def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def collect(runs: Path, recipe: Recipe, ledger: Path | None = None) -> dict[int, dict[str, Any]]:
    """Measured seeds of a row: ``seed -> {"test", "dev", "arguana": metrics.json or None, "train": manifest}``,
    from ``runs`` or, where the run folder lacks a result, from the ledger."""
    found: dict[int, dict[str, Any]] = {}
    folders = [f for f in (runs / recipe.name, ledger / recipe.name if ledger else None) if f and f.is_dir()]
    seeds = sorted({int(d.name) for f in folders for d in f.iterdir() if d.name.isdigit()})
    for seed in seeds:
        def result(kind: str, stage: str, file: str, seed: int = seed, part: str = "data") -> dict[str, Any] | None:
            local = _read(runs / recipe.name / str(seed) / stage / file)
            if local is not None or ledger is None:
                return local
            kept = _read(ledger / recipe.name / str(seed) / f"{kind}.json")
            return None if kept is None else kept[part]

        entry = {"test": result("test", "eval-test", "metrics.json"), "dev": result("dev", "eval-dev", "metrics.json"),
                 "arguana": result("arguana", "eval-arguana", "metrics.json"),
                 "train": result("train", "train", "stage.json")}
        # the machine that trained the row (an untrained row: the one that scored test), from its stage record
        stage = entry["train"] or result("test", "eval-test", "stage.json", part="stage") or {}
        entry["machine"] = machine_of(stage)
        if entry["test"] is not None or entry["dev"] is not None:
            found[seed] = entry
    return found


def machine_of(stage: dict[str, Any]) -> str | None:
    """A stage record's CPU and SIMD flags (what can change a float32 training run), or None if unrecorded."""
    hardware = stage.get("hardware")
    if not hardware:
        return None
    return f"{hardware.get('cpu')} ({', '.join(hardware.get('cpu_flags') or []) or 'no SIMD flags listed'})"


def choose_best(runs: Path, candidates: Sequence[str] | None = None, ledger: Path | None = None) -> dict[str, Any]:
    """The negmine row with the highest dev nDCG@10 on seed :data:`SEED` among the measured candidates.

    Test scores are never read here. Returns ``{"best", "compared": [names], "dev": {name: score}}`` (``best`` is
    ``None`` when no candidate has a dev score).
    """
    names = list(candidates) if candidates else list(CANDIDATES)
    return selection_of({n: collect(runs, BY_NAME[n], ledger) for n in names}, names)


def selection_of(rows: dict[str, dict[int, dict[str, Any]]], names: Sequence[str]) -> dict[str, Any]:
    """:func:`choose_best`'s answer from results already collected (``rows`` holds at least ``names``)."""
    best, dev = dev_choice(rows, names)
    return {"best": best, "compared": sorted(dev, key=list(names).index), "dev": dev, "metric": SELECT_METRIC,
            "seed": SEED, "split": DEV_SPLIT}


def dev_choice(rows: dict[str, dict[int, dict[str, Any]]], names: Sequence[str]
               ) -> tuple[str | None, dict[str, float]]:
    """Among ``names`` (their results in ``rows``), the one with the highest dev nDCG@10 on :data:`SEED` (ties: the
    earlier, simpler row) and the dev scores compared; ``None`` when none has one. Test scores are never read."""
    dev = {n: float(seed["dev"]["metrics"][SELECT_METRIC]) for n in names
           if (seed := rows[n].get(SEED)) and seed["dev"] is not None}
    return (max(dev, key=lambda n: (dev[n], -names.index(n))) if dev else None), dev


def dev_margin(rows: dict[str, dict[int, dict[str, Any]]], selection: dict[str, Any]) -> dict[str, Any] | None:
    """How far the dev choice stands above the runner-up on dev: the paired bootstrap over dev queries (seed
    :data:`SEED`), ``None`` with fewer than two candidates. A lead inside its interval is a choice among equals."""
    runner_up, _ = dev_choice(rows, [n for n in selection["dev"] if n != selection["best"]])
    if selection["best"] is None or runner_up is None:
        return None
    from negmine.evaluation.significance import seed_aware_test

    scores = {n: {SEED: per_seed_scores(rows[n], "dev", SELECT_METRIC)[SEED]} for n in (runner_up, selection["best"])}
    test = seed_aware_test(scores[runner_up], scores[selection["best"]], metric=SELECT_METRIC,
                           n_resamples=N_RESAMPLES, seed=0)
    return {"runner_up": runner_up, **test.to_dict()}


def dev_test_agreement(rows: dict[str, dict[int, dict[str, Any]]], best: str | None) -> dict[str, Any] | None:
    """Does dev rank the recipes the way test does? Kendall's tau-b between dev and test nDCG@10 on seed
    :data:`SEED` over every trained row (negmine's and the peers') measured on both, with scipy's p-value (exact
    without ties), and where the dev choice ranks on test. Read after the choice, never used for it; ``None`` with
    fewer than three such rows."""
    names = [r.name for r in RECIPES if r.kind != "zero-shot" and (e := rows[r.name].get(SEED))
             and e["dev"] is not None and e["test"] is not None]
    if len(names) < 3:
        return None
    from scipy.stats import kendalltau

    dev, test = ({n: float(rows[n][SEED][split]["metrics"][SELECT_METRIC]) for n in names}
                 for split in ("dev", "test"))
    result = kendalltau([dev[n] for n in names], [test[n] for n in names])
    by_test = sorted(names, key=test.__getitem__, reverse=True)
    return {"seed": SEED, "metric": SELECT_METRIC, "rows": names, "kendall_tau": float(result.statistic),
            "p_value": float(result.pvalue),
            "best_test_rank": by_test.index(best) + 1 if best in names else None,
            "test_leader": by_test[0], "dev_leader": max(names, key=dev.__getitem__)}


def agreement_text(agreement: dict[str, Any] | None) -> str:
    """The sentence on :func:`dev_test_agreement` after the selection text (with its leading space), or ``""``."""
    if not agreement:
        return ""
    n = len(agreement["rows"])
    rank = agreement["best_test_rank"]
    return (f" Dev against test over the {n} trained rows measured on seed {agreement['seed']} (negmine's and the "
            f"peers'): Kendall's τ = {agreement['kendall_tau']:+.2f} between their dev and test "
            f"{agreement['metric']} (p={agreement['p_value']:.3g}); the dev choice ranks "
            + (f"{rank} of {n} on test" if rank else "nowhere (not measured on both)")
            + f", and the test leader is `{agreement['test_leader']}`.")


def role_of(recipe: Recipe, best: str | None) -> str:
    if recipe.kind == "zero-shot":
        return "zero-shot" if recipe.teacher == STUDENT else "teacher"
    if recipe.kind == "peer":
        return "peer" if recipe.teacher == STUDENT else "peer-teacher"
    if recipe.name == best:
        return "best"
    if best is not None and recipe.name == BY_NAME[best].base:
        return "ablation"
    return "row"


def per_seed_scores(seeds: dict[int, dict[str, Any]], split: str, metric: str) -> dict[int, dict[str, float]]:
    return {s: e[split]["per_query"][metric] for s, e in seeds.items() if e[split] is not None}


def compare_to_peer(rows: dict[str, dict[int, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``name -> metric -> seed-aware test vs the peer`` on test, Holm-adjusted across the rows (per metric)."""
    from negmine.evaluation.significance import holm_adjust, seed_aware_test

    peer = rows.get(PEER) or {}
    out: dict[str, dict[str, Any]] = {}
    if not any(e["test"] is not None for e in peer.values()):
        return out
    for metric in METRICS:
        names, results = [], []
        for recipe in RECIPES:
            if recipe.name == PEER or role_of(recipe, None) == "teacher":  # the teacher is a reference, not a rival
                continue
            row = per_seed_scores(rows[recipe.name], "test", metric)
            if row:
                names.append(recipe.name)
                results.append(seed_aware_test(per_seed_scores(peer, "test", metric), row, metric=metric,
                                               n_resamples=N_RESAMPLES, seed=0))
        for name, result in zip(names, holm_adjust(results)):
            out.setdefault(name, {})[metric] = result.to_dict()
    return out


def one_change_at_a_time(rows: dict[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each measured row that names a ``base``: its seed-aware test nDCG@10 difference to it on the seeds both ran
    (test split; descriptive, Holm-adjusted across these lines)."""
    from negmine.evaluation.significance import holm_adjust, seed_aware_test

    names, results = [], []
    for recipe in RECIPES:
        row, base = rows[recipe.name], rows.get(recipe.base, {})
        seeds = sorted(s for s in set(row) & set(base) if row[s]["test"] is not None and base[s]["test"] is not None)
        if not recipe.base or not seeds:
            continue
        names.append(recipe.name)
        results.append(seed_aware_test(per_seed_scores({s: base[s] for s in seeds}, "test", "ndcg@10"),
                                       per_seed_scores({s: row[s] for s in seeds}, "test", "ndcg@10"),
                                       metric="ndcg@10", n_resamples=N_RESAMPLES, seed=0))
    return [{"row": n, "base": BY_NAME[n].base, **r.to_dict()} for n, r in zip(names, holm_adjust(results))]


def same_teacher_peer(rows: dict[str, dict[int, dict[str, Any]]], best: str) -> dict[str, Any]:
    """The same-teacher sentence-transformers peer of ``best``: among the peer rows mining with best's teacher (its
    scorer, or its miner), the one with the highest dev score on :data:`SEED` (test never chooses)."""
    teacher = BY_NAME[best].scorer or BY_NAME[best].teacher
    chosen, dev = dev_choice(rows, [r.name for r in RECIPES if r.kind == "peer" and r.teacher == teacher != STUDENT])
    return {"teacher": teacher, "chosen": chosen, "dev": dev}


def check_targets(rows: dict[str, dict[int, dict[str, Any]]], best: str | None,
                  comparisons: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each of :data:`TARGETS` for the dev-chosen best row: the measured figure and met / not met / not measured.

    Against the peer the table's own Holm-adjusted test is read; against the same-teacher peer a seed-aware test of
    its own (one comparison). Until both rows have 3 seeds a comparison reads "on course" or "not met" with "(fewer
    than 3 seeds)"; a comparison with no data reads "not measured"."""
    if best is None:
        return {"best": None}
    alpha = TARGETS["alpha"]
    best_test = per_seed_scores(rows[best], "test", SELECT_METRIC)
    out: dict[str, Any] = {"best": best, "best_seeds": sorted(best_test), **{f"target_{k}": v for k, v in
                                                                             TARGETS.items()}}

    def verdict(test: dict[str, Any] | None, margin: float, seeds: int) -> dict[str, Any]:
        if not test:
            return {"status": "not measured"}
        enough = len(best_test) >= TARGETS["seeds"] and seeds >= TARGETS["seeds"]
        p = test.get("p_holm") if test.get("p_holm") is not None else test["p_value"]
        met = test["diff"] >= margin and p < alpha
        return {"status": ("met" if met else "not met") if enough else
                f"{'on course' if met else 'not met'} (fewer than {TARGETS['seeds']} seeds)", "test": test}

    peer_seeds = len(per_seed_scores(rows.get(PEER, {}), "test", SELECT_METRIC))
    out["vs_peer"] = verdict(comparisons.get(best, {}).get(SELECT_METRIC), TARGETS["vs_peer"], peer_seeds)
    same = same_teacher_peer(rows, best)
    out["same_teacher_peer"] = same
    if same["chosen"] is not None:
        from negmine.evaluation.significance import seed_aware_test

        other = per_seed_scores(rows[same["chosen"]], "test", SELECT_METRIC)
        test = (seed_aware_test(other, best_test, metric=SELECT_METRIC, n_resamples=N_RESAMPLES, seed=0).to_dict()
                if other and best_test else None)
        out["vs_peer_teacher"] = verdict(test, TARGETS["vs_peer_teacher"], len(other))
    else:
        out["vs_peer_teacher"] = {"status": "not measured"}
    zero = [e["arguana"]["metrics"]["ndcg@10"] for e in rows[ZERO_SHOT].values() if e["arguana"] is not None]
    mine = [e["arguana"]["metrics"]["ndcg@10"] for e in rows[best].values() if e["arguana"] is not None]
    out["arguana"] = ({"status": "not measured"} if not zero or not mine else
                      {"status": "met" if statistics.mean(mine) >= statistics.mean(zero)
                       - TARGETS["arguana_below_zero_shot"] else "not met",
                       "best": statistics.mean(mine), "zero_shot": statistics.mean(zero)})
    tested = [e["test"]["metrics"][SELECT_METRIC] for e in rows[best].values() if e["test"] is not None]
    out["moonshot"] = ({"status": "not measured"} if not tested else
                       {"status": "met" if statistics.mean(tested) >= TARGETS["moonshot"] else "not met",
                        "test": statistics.mean(tested)})
    return out


def targets_lines(targets: dict[str, Any]) -> list[str]:
    """The report's "Targets" list (issue 23), from :func:`check_targets`."""
    if targets.get("best") is None:
        return []
    best = f"`{targets['best']}`"

    def measured(entry: dict[str, Any]) -> str:
        test = entry.get("test")
        if not isinstance(test, dict):
            return entry["status"]
        holm = f", Holm p {test['p_holm']:.3g}" if test.get("p_holm") is not None else ""
        return (f"Δ {100 * test['diff']:+.2f} points [{100 * test['ci_low']:+.2f}, {100 * test['ci_high']:+.2f}], "
                f"p {test['p_value']:.3g}{holm}: **{entry['status']}**")

    same = targets["same_teacher_peer"]
    lines = ["", f"Targets for the dev-chosen best row ({best}, seeds {', '.join(map(str, targets['best_seeds']))}; "
                 f"{targets['target_seeds']} seeds each and Holm p < {targets['target_alpha']} to count as met):",
             f"- ≥ +{100 * targets['target_vs_peer']:.1f} points test nDCG@10 over `{PEER}`: "
             f"{measured(targets['vs_peer'])}",
             f"- ≥ +{100 * targets['target_vs_peer_teacher']:.1f} points over the same-teacher peer "
             + (f"(`{same['chosen']}`, the better on dev of "
                f"{', '.join(f'`{n}` {v:.4f}' for n, v in same['dev'].items())}): "
                if same["chosen"] else f"(teacher `{same['teacher']}`; no such peer measured on dev yet): ")
             + measured(targets["vs_peer_teacher"])]
    arguana = targets["arguana"]
    lines.append(f"- ArguAna nDCG@10 at most {100 * targets['target_arguana_below_zero_shot']:.1f} point below "
                 "zero-shot: " + (f"{arguana['best']:.4f} vs {arguana['zero_shot']:.4f}: **{arguana['status']}**"
                                  if "best" in arguana else arguana["status"]))
    moon = targets["moonshot"]
    lines.append(f"- moonshot, test nDCG@10 ≥ {targets['target_moonshot']:.2f}: "
                 + (f"{moon['test']:.4f}: **{moon['status']}**" if "test" in moon else moon["status"]))
    return lines


def results_json(runs: Path, smoke: bool, ledger: Path | None = None) -> dict[str, Any]:
    """Everything the report shows, from what is on disk (the shape of ``benchmarks/results/scifact.json``)."""
    rows = {r.name: collect(runs, r, ledger) for r in RECIPES}
    selection = selection_of(rows, CANDIDATES)
    selection["dev_margin"] = dev_margin(rows, selection)
    selection["dev_test_agreement"] = dev_test_agreement(rows, selection["best"])
    comparisons = compare_to_peer(rows)
    out_rows = []
    for recipe in RECIPES:
        seeds = rows[recipe.name]
        role = role_of(recipe, selection["best"])

        def scores(split: str, seeds: dict[int, dict[str, Any]] = seeds) -> dict[str, dict[str, float]]:
            return {str(s): {m: e[split]["metrics"][m] for m in METRICS} for s, e in sorted(seeds.items())
                    if e[split] is not None}

        arguana = {str(s): e["arguana"]["metrics"]["ndcg@10"] for s, e in sorted(seeds.items())
                   if e["arguana"] is not None}
        trained = [e["train"]["seconds"] for e in seeds.values() if e["train"] is not None]
        out_rows.append({
            "name": recipe.name, "role": role, "selected_on": DEV_SPLIT if role == "best" else None,
            "seeds": scores("test"), "dev_seeds": scores("dev"), "arguana_ndcg@10": arguana,
            # an untrained model has nothing random: its one folder is the whole measurement, not a single seed
            "deterministic": recipe.kind == "zero-shot",
            "single_seed": recipe.kind != "zero-shot" and len(scores("test")) == 1,
            "train_seconds": statistics.mean(trained) if trained else None,
            "resumed": any(e["train"] and e["train"].get("resumed_from") for e in seeds.values()),
            "machines": {str(s): e["machine"] for s, e in sorted(seeds.items())},
            "recipe": recipe.to_dict(), "vs_peer": comparisons.get(recipe.name, {}),
        })
    scale = SMOKE if smoke else FULL
    split = (_read(runs / "_data" / "scifact" / "split.json") or (_read(ledger / "split.json") if ledger else None)
             or {})
    return {"smoke": smoke, "protocol": {"dev_fraction": DEV_FRACTION, "dev_seed": DEV_SEED,
                                         "dev_queries": split.get("dev_queries"),
                                         "train_queries": split.get("train_queries"), "train_split": TRAIN_SPLIT,
                                         "selection": selection, "recipes_compared_on_dev": len(selection["compared"]),
                                         "test": "scored once per finished recipe; never used to choose"},
            "scale": asdict(scale), "rows": out_rows, "one_change_at_a_time": one_change_at_a_time(rows),
            "targets": check_targets(rows, selection["best"], comparisons),
            "shared_steps": shared_steps(runs)}


def shared_steps(runs: Path) -> list[dict[str, Any]]:
    keys = ("stage", "seconds", "queries", "pairs", "rows", "queries_judged", "judge", "teacher", "commit")
    return [{"folder": p.parent.name, **{k: m[k] for k in keys if k in m}}
            for p in sorted((runs / "_shared").glob("*/stage.json")) if (m := _read(p))]


#### the report
def _mean_std(values: Sequence[float], digits: int = 4) -> str:
    if not values:
        return "not run"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _versus(test: dict[str, Any] | None) -> str:
    if not test:
        return "—"
    holm = f"{test['p_holm']:.3g}" if test.get("p_holm") is not None else "—"
    return f"{test['diff']:+.4f} [{test['ci_low']:+.4f}, {test['ci_high']:+.4f}], p={test['p_value']:.3g}, Holm {holm}"


def _measured(row: dict[str, Any]) -> bool:
    return bool(row["seeds"] or row["dev_seeds"])


def table_lines(data: dict[str, Any], measured_only: bool = False) -> list[str]:
    """The results table: every row of the grid (the report's), or only the measured ones and a line naming the
    others (README's)."""
    lines = ["| recipe | role | seeds | dev nDCG@10 (seed 12) | dev nDCG@10 (every seed) | test nDCG@10 | "
             "test Recall@100 | Δ nDCG@10 vs peer [95% CI], p, Holm p | Δ Recall@100 vs peer [95% CI], p, Holm p | "
             "ArguAna nDCG@10 |",
             "|---|---|---|---:|---:|---:|---:|---|---|---:|"]
    for row in data["rows"]:
        if measured_only and not _measured(row):
            continue
        seeds = row["seeds"]
        seed_text = ("—" if not seeds else "no training (deterministic)" if row.get("deterministic")
                     else ", ".join(seeds) + (" (single seed)" if row["single_seed"] else ""))
        dev = row["dev_seeds"].get(str(SEED), {}).get(SELECT_METRIC)
        dev_all = [v[SELECT_METRIC] for v in row["dev_seeds"].values()]
        lines.append("| " + " | ".join([
            f"`{row['name']}`", row["role"] + (" (chosen on dev)" if row["selected_on"] else ""), seed_text,
            "not run" if dev is None else f"{dev:.4f}",
            _mean_std(dev_all) if len(dev_all) > 1 else "—",  # what the choice on seed 12 looks like over seeds
            _mean_std([v["ndcg@10"] for v in seeds.values()]), _mean_std([v["recall@100"] for v in seeds.values()]),
            _versus(row["vs_peer"].get("ndcg@10")), _versus(row["vs_peer"].get("recall@100")),
            _mean_std(list(row["arguana_ndcg@10"].values()))]) + " |")
    waiting = [row["name"] for row in data["rows"] if not _measured(row)]
    if measured_only and waiting:
        lines += ["", f"Defined in the grid, not run yet ({len(waiting)}): "
                      + ", ".join(f"`{name}`" for name in waiting) + "."]
    return lines


def machines_lines(data: dict[str, Any]) -> list[str]:
    """Which machine ran which result: rows of one table come from sessions on different machines, and float32
    training differs slightly between CPUs (the seed spread is the yardstick for such differences)."""
    by_machine: dict[str, list[str]] = {}
    for row in data["rows"]:
        for seed, machine in row.get("machines", {}).items():
            by_machine.setdefault(machine or "machine not recorded", []).append(f"`{row['name']}` seed {seed}")
    if len(by_machine) <= 1:
        return ["", f"Every result ran on one machine: {next(iter(by_machine))}."] if by_machine else []
    ranked = sorted(by_machine.items(), key=lambda item: -len(item[1]))
    lines = ["", "Machines (the one that trained each result; an untrained row: the one that scored it):",
             f"- {ranked[0][0]}: {len(ranked[0][1])} results, every one not listed below"]
    lines += [f"- {machine}: {len(results)} result{'s' if len(results) != 1 else ''}: {', '.join(results)}"
              for machine, results in ranked[1:]]
    return lines


def changes_lines(data: dict[str, Any]) -> list[str]:
    """The one-change-at-a-time comparisons (a row against the row it changes one thing of)."""
    changes = data["one_change_at_a_time"]
    if not changes:
        return []
    best = data["protocol"]["selection"]["best"]
    return ["", "One change at a time (test nDCG@10 of a row minus the row it changes, on the seeds both ran; "
                "Holm across these lines):",
            *(f"- `{c['row']}` − `{c['base']}` (seeds {', '.join(map(str, c['seeds_b']))}): {_versus(c)}"
              + (" — the ablation of the best row" if c["row"] == best else "") for c in changes)]


def selection_text(data: dict[str, Any]) -> str:
    p = data["protocol"]
    sel = p["selection"]
    if sel["best"] is None:
        return (f"No recipe has been compared on dev yet (dev = {p['dev_fraction']:.0%} of SciFact train, seed "
                f"{p['dev_seed']}); no `best` row.")
    return (f"`best` = `{sel['best']}`: the highest dev {sel['metric']} on seed {sel['seed']} among "
            f"{p['recipes_compared_on_dev']} negmine recipe{'s' if p['recipes_compared_on_dev'] != 1 else ''} "
            f"compared on dev ({', '.join(f'`{n}`' for n in sel['compared'])}); dev = {p['dev_queries']} of the "
            f"{p['dev_queries'] + p['train_queries']} SciFact train queries (seed {p['dev_seed']}), trained on the "
            f"other {p['train_queries']}. Test was scored once per finished recipe and chose nothing."
            + _margin_text(sel.get("dev_margin")) + agreement_text(sel.get("dev_test_agreement")))


def _margin_text(margin: dict[str, Any] | None) -> str:
    if not margin:
        return ""
    inside = margin["ci_low"] <= 0 <= margin["ci_high"]
    return (f" Its dev lead over the runner-up `{margin['runner_up']}`: {margin['diff']:+.4f} "
            f"[{margin['ci_low']:+.4f}, {margin['ci_high']:+.4f}], p={margin['p_value']:.3g} (paired bootstrap over "
            f"the {margin['n_queries']} dev queries)" + (": within the noise of dev, a choice among equals." if inside
                                                          else "."))


def write_reports(runs: Path, out: Path, readme: Path | None, smoke: bool, argv: Sequence[str] | None,
                  ledger: Path | None = None) -> str:
    """Write ``scifact.md`` + ``scifact.json`` (and README's block); returns the Markdown."""
    data = results_json(runs, smoke, ledger)
    scale = SMOKE if smoke else FULL
    lines = [
        "# SciFact quality under the dev protocol: negmine recipes vs sentence-transformers' recipe"
        + (" — SMOKE RUN" if smoke else ""), "",
        *(["**Smoke mode: a handful of queries, 2 training steps, 64 tokens. These numbers test the script, they "
           "are not results.**", ""] if smoke else []),
        f"Student all-MiniLM-L6-v2 (bundled). Mined and trained on SciFact train minus a seeded "
        f"{DEV_FRACTION:.0%} dev split; chosen on dev; scored on SciFact test (nDCG@10, Recall@100); out of domain: "
        f"ArguAna test. Training: {scale.epochs:g} epoch"
        f"{'' if scale.max_steps < 0 else f' (max {scale.max_steps} steps)'}, batch {scale.batch_size}, "
        f"lr {scale.learning_rate:g}, warm-up {scale.warmup_ratio:.0%}, no-duplicates batches, "
        f"max_seq_length {scale.max_seq_length}, {scale.num_negatives} negatives (range_max {scale.range_max}, "
        f"relative margin {RELATIVE_MARGIN}, top).", "",
        selection_text(data), "",
        "Δ vs peer: test difference to `peer-baseline` (sentence-transformers' `mine_hard_negatives` + "
        "`MultipleNegativesRankingLoss`) with the 95% interval and p-value of a paired bootstrap over test queries "
        f"x training seeds ({N_RESAMPLES:,} resamples), and the p-value Holm-adjusted across the rows of this table "
        "(one family per metric). A row marked *single seed* has no measured seed variance; an untrained row "
        "(zero-shot, the teacher) is deterministic. ± is the standard deviation over seeds.", "",
        *table_lines(data),
        *targets_lines(data["targets"]),
    ]
    lines += changes_lines(data) + machines_lines(data)
    if data["shared_steps"]:
        lines += ["", "Shared steps (wall time):"]
        lines += [f"- `{s['folder']}`: {s['seconds']:.1f} s" for s in data["shared_steps"]]
    report = Report("scifact", "benchmarks/scifact_quality.py", argv, out=out)
    text = report.write("\n".join(lines), data, echo=False)
    if readme is not None and readme.is_file():
        write_readme_block(readme, data)
    return text


def readme_block(data: dict[str, Any]) -> str:
    """README's SciFact section body, generated from ``scifact.json``'s data."""
    return "\n".join([
        "<!-- generated by benchmarks/scifact_quality.py from benchmarks/results/scifact.json; do not edit -->", "",
        selection_text(data), "", *table_lines(data, measured_only=True), *targets_lines(data["targets"]),
        *changes_lines(data), *machines_lines(data), "",
        "p: paired bootstrap over test queries x training seeds; Holm: adjusted across the table's rows, per metric.",
    ])


def write_readme_block(readme: Path, data: dict[str, Any]) -> bool:
    """Replace the text between the README markers; returns False when the README has no markers."""
    return replace_readme_block(readme, README_START, README_END, readme_block(data))


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the selected rows and rewrite the reports.

    Returns:
        The step log: one ``{"step", "path", "status" ("done"/"skipped"), "elapsed"}`` per stage.
    """
    _started_at_commit()
    args = parse_args(argv)
    ctx = Context(args)
    if not args.table_only:
        if args.recipe.strip() == "protocol":
            candidates = [c.strip() for c in args.candidates.split(",")] if args.candidates else None
            run_protocol(ctx, candidates)
        else:
            for recipe in select_recipes(args.recipe, ctx.runs, ctx.ledger):
                run_recipe(ctx, recipe, seeds_of(recipe, args.seeds))
    out = Path(args.out_table) if args.out_table else (ctx.runs / "scifact.md" if args.smoke else TABLE)
    readme = None if args.smoke or args.readme == "-" else Path(args.readme) if args.readme else README
    print(write_reports(ctx.runs, out, readme, args.smoke, sys.argv[1:] if argv is None else argv, ctx.ledger),
          flush=True)
    print(f"reports: {out} and {out.with_suffix('.json')}", flush=True)
    return ctx.log


if __name__ == "__main__":
    main()
