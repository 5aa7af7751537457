"""One rule over the whole CLI: every command, given any input, exits 0 or 2, never 1 with a traceback.

Each command listed by ``negmine --help`` is run over a table of bad inputs, in process through the real entry point
(:func:`negmine.cli.main`, which turns negmine's errors into ``error: ...`` and exit code 2), so the whole table runs
in seconds. A few rows are also run as a real ``negmine`` subprocess. Exit 2 must come with a one-line message
(``error: ...``) or click's usage error, and never with a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path
from unittest import mock

import pytest

from negmine.cli import app, main

NO_DIR = "/no/such/dir"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, scifact_dir) -> dict[str, Path]:
    """Bad (and a few good) input files, shared by the rows of the table."""
    root = tmp_path_factory.mktemp("bad_inputs")
    not_model = root / "not-a-model"
    not_model.mkdir()
    (not_model / "readme.md").write_text("just notes")
    bad_utf8 = root / "bad-utf8.jsonl"
    bad_utf8.write_bytes(b'{"query_id": "q1", "query": "caf\xe9"}\n')
    truncated = root / "truncated.jsonl"
    truncated.write_text('{"query_id": "q1", "query": "a question", "positive_ids": ["d1"], "posit')
    record = {"query_id": "q1", "query": "what is a hard negative?", "positive_ids": ["d1"],
              "positives": ["a negative that looks like a positive"], "positive_scores": [0.9],
              "negative_ids": ["d2"], "negatives": ["an unrelated passage"], "negative_scores": [0.3]}
    one_negative = root / "mined.jsonl"
    one_negative.write_text("\n".join(json.dumps({**record, "query_id": f"q{i}", "query": f"question {i}"})
                                      for i in range(4)) + "\n")
    bad_toml = root / "bad.toml"
    bad_toml.write_bytes(b"[train]\nloss = \xff\n")
    empty_beir = root / "empty-beir"
    (empty_beir / "qrels").mkdir(parents=True)
    (empty_beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n")
    (empty_beir / "corpus.jsonl").write_text("")
    (empty_beir / "queries.jsonl").write_text("")
    bad_beir = root / "bad-beir"
    (bad_beir / "qrels").mkdir(parents=True)
    (bad_beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\tinf\n")
    (bad_beir / "corpus.jsonl").write_bytes(b'{"_id": "d1", "text": "caf\xe9"}\n')
    (bad_beir / "queries.jsonl").write_text('{"_id": "q1", "text": "a query"}\n')
    gguf = root / "broken.gguf"
    gguf.write_bytes(b"not really a gguf")
    return {"not_model": not_model, "bad_utf8": bad_utf8, "truncated": truncated, "mined": one_negative,
            "bad_toml": bad_toml, "empty_beir": empty_beir, "bad_beir": bad_beir, "out": root / "out",
            "scifact": scifact_dir, "gguf": gguf}


# (command, arguments with {placeholders} from the fixture, text the error message must contain)
TABLE = [
    ("mine", ["--retriever", NO_DIR, "--data", "{scifact}", "--out", "{out}/m1"], "model folder does not exist"),
    ("mine", ["--retriever", "{not_model}", "--data", "{scifact}", "--out", "{out}/m2"], "not a model"),
    ("mine", ["--retriever", "minilmm", "--data", "{scifact}"], "Did you mean 'minilm'"),
    ("mine", ["--retriever", "hashing", "--data", NO_DIR], "no such data folder"),
    ("mine", ["--retriever", "hashing", "--data", "{bad_beir}"], "not UTF-8"),
    ("mine", ["--retriever", "hashing", "--data", "{empty_beir}"], "no documents"),
    ("mine", ["--retriever", "hashing", "--data", "{scifact}", "--range", "abc"], "MIN:MAX"),
    ("mine", ["--retriever", "hashing", "--data", "{scifact}", "--strategy", "nope"], "nope"),
    ("mine", ["--retriever", "hashing", "--data", "{scifact}", "--index-dir", NO_DIR, "--out", "{out}/m3"],
     "no such index folder"),
    ("mine", ["--retriever", "hashing", "--data", "{scifact}", "--cross-encoder", NO_DIR, "--out", "{out}/m4"],
     "--cross-encoder /no/such/dir: model folder does not exist"),
    ("mine", ["--retriever", "minilm", "--model-path", NO_DIR, "--data", "{scifact}", "--out", "{out}/m5"],
     "is not a folder"),
    ("mine", ["--config", "{bad_toml}"], "invalid TOML"),
    ("mine", ["--config", "{out}"], ""),
    ("index", ["build", "--out", "{out}/i1", "--retriever", NO_DIR], "model folder does not exist"),
    ("index", ["build", "--out", "{out}/i2", "--retriever", "hashing", "--data", "{bad_beir}"], "not UTF-8"),
    ("index", ["build", "--out", "{out}/i3", "--retriever", "hashing", "--factory", "NoSuchFactory"], ""),
    ("relabel", ["--mined", "/no/such.jsonl", "--judge", "llm:http://127.0.0.1:9/v1@m", "--out", "{out}/r1"],
     "not found"),
    ("relabel", ["--mined", "{bad_utf8}", "--judge", "llm:http://127.0.0.1:9/v1@m", "--out", "{out}/r2"],
     "not UTF-8"),
    ("relabel", ["--mined", "{truncated}", "--judge", "llm:http://127.0.0.1:9/v1@m", "--out", "{out}/r3"],
     "malformed JSON"),
    ("relabel", ["--mined", "{mined}", "--judge", f"cross-encoder:{NO_DIR}", "--out", "{out}/r4"],
     "model folder does not exist"),
    ("relabel", ["--mined", "{mined}", "--judge", f"llm:{NO_DIR}", "--out", "{out}/r5"],
     "model folder does not exist"),
    ("relabel", ["--mined", "{mined}", "--judge", "llm:/no/such.gguf", "--out", "{out}/r6"], "no such GGUF file"),
    ("relabel", ["--mined", "{mined}", "--judge", "llm:{not_model}", "--out", "{out}/r7"], "not a model"),
    ("relabel", ["--mined", "{mined}", "--judge", "nope:x", "--out", "{out}/r8"], "unknown judge kind"),
    ("relabel", ["--mined", "{mined}", "--judge", "llm:http://127.0.0.1:9/v1@m", "--mode", "weird",
                 "--out", "{out}/r9"], "weird"),
    ("train", ["--data", NO_DIR, "--out", "{out}/t1"], "no such file"),
    ("train", ["--data", "{bad_utf8}", "--out", "{out}/t2"], "not UTF-8"),
    ("train", ["--data", "{mined}", "--model", NO_DIR, "--out", "{out}/t3"], "model folder does not exist"),
    ("train", ["--data", "{mined}", "--model", "{not_model}", "--out", "{out}/t4"], "not a model"),
    ("train", ["--data", "{mined}", "--num-negatives", "3", "--out", "{out}/t5"], "negatives per query: 1 x 4"),
    ("train", ["--data", "{mined}", "--loss", "nope", "--out", "{out}/t6"], "nope"),
    ("train", ["--data", "{mined}", "--loss-arg", "garbage", "--out", "{out}/t7"], "KEY=VALUE"),
    ("train", ["--config", "{bad_toml}"], "invalid TOML"),
    ("pseudo", ["--data", NO_DIR, "--out", "{out}/p1"], "no such data folder"),
    ("pseudo", ["--data", "{empty_beir}", "--out", "{out}/p2"], "no documents"),
    ("pseudo", ["--data", "{bad_beir}", "--out", "{out}/p3"], "not UTF-8"),
    ("pseudo", ["--data", "{mined}", "--out", "{out}/p4"], "need a BEIR folder"),
    ("pseudo", ["--data", "{scifact}", "--method", "t5", "--out", "{out}/p5"], "is not one of"),
    ("pseudo", ["--data", "{scifact}", "--method", "llm", "--out", "{out}/p6"], "needs --model"),
    ("pseudo", ["--data", "{scifact}", "--method", "llm", "--model", "{gguf}", "--out", "{out}/p7"],
     "could not load"),
    ("pseudo", ["--data", "{scifact}", "--merge", "nope", "--out", "{out}/p8"], "no qrels split 'nope'"),
    ("pseudo", ["--data", "{scifact}", "--min-words", "9", "--max-words", "3", "--out", "{out}/p9"], "min_words"),
    ("score", ["--mined", "/no/such.jsonl", "--teacher", "hashing", "--out", "{out}/c1"], "file not found"),
    ("score", ["--mined", "{bad_utf8}", "--teacher", "hashing", "--out", "{out}/c2"], "not UTF-8"),
    ("score", ["--mined", "{truncated}", "--teacher", "hashing", "--out", "{out}/c3"], ""),
    ("score", ["--mined", "{mined}", "--teacher", NO_DIR, "--out", "{out}/c4"], "model folder does not exist"),
    ("score", ["--mined", "{mined}", "--teacher", "{not_model}", "--out", "{out}/c5"], "not a model"),
    ("score", ["--mined", "{mined}", "--teacher", f"cross-encoder:{NO_DIR}", "--out", "{out}/c6"], ""),
    ("eval", ["--model", NO_DIR, "--data", "{scifact}"], "model folder does not exist"),
    ("eval", ["--model", "{not_model}", "--data", "{scifact}"], "not a model"),
    ("eval", ["--model", "hashing", "--data", NO_DIR], "no such data folder"),
    ("eval", ["--model", "hashing", "--data", "{bad_beir}", "--split", "train"], "not UTF-8"),
    ("mteb", ["run", "--model", NO_DIR, "--data", "{scifact}", "--out", "{out}/e1"], ""),
    ("mteb", ["export", "--results", NO_DIR, "--out", "{out}/e2"], ""),
]

SLOW_ROWS = [  # need a real model: the loss rejects its argument after the model is loaded
    ("train", ["--data", "{mined}", "--model", "minilm", "--loss-arg", "temperature=-1", "--out", "{out}/s1"],
     "--loss-arg temperature=-1 is out of range"),
    ("train", ["--data", "{mined}", "--model", "minilm", "--loss-arg", "temperature=abc", "--out", "{out}/s2"],
     "--loss-arg temperature='abc' is not a number"),
    ("relabel", ["--mined", "{mined}", "--judge", "llm:{gguf}", "--out", "{out}/s3"], "could not load"),
]


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """``negmine ARGV`` in process; returns (exit code, stderr). An escaping exception counts as exit 1."""
    with mock.patch.object(sys, "argv", ["negmine", *argv]):
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except Exception:  # noqa: BLE001 - what the rule forbids: a traceback
            code = 1
            sys.stderr.write(traceback.format_exc())
    captured = capsys.readouterr()
    if code == 2 and not captured.err.strip() and "Usage:" in captured.out:
        return code, "Usage: (printed the help)"  # `negmine` alone: click prints the help and exits 2
    return code, captured.err


def check(code: int, err: str, expected: str) -> None:
    assert code in (0, 2), f"exit {code}:\n{err}"
    assert "Traceback" not in err, err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        usage = "Usage:" in err
        assert len(errors) == 1 or usage, f"no one-line error:\n{err}"
        if errors and not usage:
            assert err.strip().splitlines()[-1].startswith("error:"), err
        assert expected in err, f"{expected!r} not in:\n{err}"


def _fill(args: list[str], inputs: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in inputs.items()}) for a in args]


def test_the_table_covers_every_command():
    listed = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert listed == {command for command, _, _ in TABLE}


@pytest.mark.parametrize("command,args,expected", TABLE, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(TABLE)])
def test_bad_input_exits_2_with_one_line(command, args, expected, inputs, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_main([command, *_fill(args, inputs)], capsys)
    assert code == 2, f"exit {code}:\n{err}"
    check(code, err, expected)


@pytest.mark.parametrize("command,args,expected", SLOW_ROWS, ids=[f"{c}-{i}" for i, (c, _, _) in
                                                                   enumerate(SLOW_ROWS)])
def test_bad_input_after_loading_a_model(command, args, expected, inputs, capsys, monkeypatch):
    pytest.importorskip("sentence_transformers")
    if "gguf" in " ".join(args):
        pytest.importorskip("llama_cpp")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_main([command, *_fill(args, inputs)], capsys)
    assert code == 2, f"exit {code}:\n{err}"
    check(code, err, expected)


@pytest.mark.parametrize("argv", [[], ["--help"], ["mine", "--help"], ["index", "build", "--help"],
                                  ["relabel", "--help"], ["train", "--help"], ["eval", "--help"],
                                  ["mteb", "run", "--help"], ["mteb", "export", "--help"], ["no-such-command"],
                                  ["mine", "--no-such-flag"], ["train", "--batch-size", "many"]])
def test_help_and_usage_errors(argv, capsys):
    code, err = run_main(argv, capsys)
    check(code, err, "")


def test_the_installed_entry_point(inputs):
    """The same rule through a real process, as a user runs it (one row: a process start costs seconds)."""
    result = subprocess.run([sys.executable, "-c", "from negmine.cli import main; main()", "relabel", "--mined",
                             str(inputs["mined"]), "--judge", f"llm:{NO_DIR}", "--out", str(inputs["out"] / "x")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: llm judge {NO_DIR}: model folder does not exist"
