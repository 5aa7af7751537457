"""Fuzz the readers with seeded corruptions of real SciFact lines: every case ends in a valid load or a one-line
:class:`~negmine.errors.DataError` naming the file (and the line, when one line is at fault) — never another
exception, never a hang.

Readers: BEIR corpus, queries and qrels; ``mined.jsonl`` (mining's strict reader and the training reader); pair files;
sentence-transformers n-tuple files. Corruptions: truncation, bad UTF-8, wrong JSON types (including huge integers and
non-finite numbers), huge lines, duplicate keys and ids, deep nesting, NUL bytes, a byte-order mark, missing or extra
fields, and broken qrels columns. The seeds are fixed, so a failure reproduces.
"""

from __future__ import annotations

import gzip
import json
import random
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest

from negmine.errors import DataError

CASES_PER_READER = 120
SECONDS_PER_CASE = 10
FILE_LEVEL = ("no documents", "no queries", "no judgements", "empty file", "empty qrels file", "no (query, positive)",
              "no training rows", "no queries to train on", "unreadable", "file not found")

WRONG_VALUES = [None, True, 0, -1, 3.5, 10**400, "", " ", "x", [], [1, 2], {}, {"a": 1}, ["a", None], [10**400],
                "\x00", "é" * 3]


def _lines(path: Path, n: int) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [next(handle).rstrip("\n") for _ in range(n)]


@pytest.fixture(scope="module")
def scifact_lines(scifact_dir: Path) -> dict[str, list[str]]:
    corpus = _lines(scifact_dir / "corpus.jsonl.gz", 30)
    queries = _lines(scifact_dir / "queries.jsonl.gz", 30)
    docs = [json.loads(line) for line in corpus]
    qs = [json.loads(line) for line in queries]
    qrels = ["query-id\tcorpus-id\tscore"] + [f"{qs[i]['_id']}\t{docs[i]['_id']}\t1" for i in range(30)]
    mined = []
    pairs = []
    ntuple = []
    for i in range(20):
        pos, negs = docs[i], [docs[(i + k) % 30] for k in (1, 2, 3)]
        mined.append(json.dumps({
            "query_id": qs[i]["_id"], "query": qs[i]["text"], "positive_ids": [pos["_id"]],
            "positives": [pos["text"]], "positive_scores": [0.8], "negative_ids": [d["_id"] for d in negs],
            "negatives": [d["text"] for d in negs], "negative_scores": [0.5, 0.4, 0.3]}, ensure_ascii=False))
        pairs.append(json.dumps({"query": qs[i]["text"], "positive": pos["text"], "negative": negs[0]["text"]},
                                ensure_ascii=False))
        ntuple.append(json.dumps({"anchor": qs[i]["text"], "positive": pos["text"],
                                  **{f"negative_{k + 1}": d["text"] for k, d in enumerate(negs)},
                                  "scores": [0.8, 0.5, 0.4, 0.3]}, ensure_ascii=False))
    return {"corpus": corpus, "queries": queries, "qrels": qrels, "mined": mined, "pairs": pairs, "ntuple": ntuple}


# --- corruptions: each takes (rng, lines) and returns the bytes of the corrupted file --------------------------------


def _join(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def _pick(rng: random.Random, lines: list[str]) -> int:
    return rng.randrange(1 if lines[0].startswith("query-id") else 0, len(lines))


def truncate_line(rng, lines):
    i = _pick(rng, lines)
    data = lines[i].encode("utf-8")
    out = [line.encode("utf-8") for line in lines]
    out[i] = data[:rng.randrange(len(data))]
    return b"\n".join(out) + b"\n"


def truncate_file(rng, lines):
    data = _join(lines)
    return data[:rng.randrange(len(data))]


def bad_utf8(rng, lines):
    out = [line.encode("utf-8") for line in lines]
    i = _pick(rng, lines)
    pos = rng.randrange(len(out[i]) + 1)
    junk = rng.choice([b"\xff", b"\xc3", b"\xe9", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80\x80"])
    out[i] = out[i][:pos] + junk + out[i][pos:]
    return b"\n".join(out) + b"\n"


def wrong_type(rng, lines):
    i = _pick(rng, lines)
    try:
        obj = json.loads(lines[i])
    except ValueError:
        return _join(lines)
    if isinstance(obj, dict) and obj:
        key = rng.choice(sorted(obj))
        value = rng.choice(WRONG_VALUES)
        if isinstance(obj[key], list) and obj[key] and rng.random() < 0.5:
            obj[key] = list(obj[key])
            obj[key][rng.randrange(len(obj[key]))] = value
        else:
            obj[key] = value
        text = json.dumps(obj, ensure_ascii=False)
    else:
        text = rng.choice(["[]", "1", '"s"', "null", "true"])
    return _join(lines[:i] + [text] + lines[i + 1:])


def whole_line_type(rng, lines):
    i = _pick(rng, lines)
    text = rng.choice(["[]", "[1, 2]", "42", '"a string"', "null", "true", "1e400", "NaN", "{}", '{"": ""}'])
    return _join(lines[:i] + [text] + lines[i + 1:])


def huge_line(rng, lines):
    i = _pick(rng, lines)
    filler = rng.choice(["a", "é", "word ", "\\u00e9"]) * rng.choice([10_000, 400_000])
    if lines[i].startswith("{") and rng.random() < 0.7:
        text = lines[i][:-1] + f', "extra": "{filler}"' + "}"
    else:
        text = lines[i] + filler
    return _join(lines[:i] + [text] + lines[i + 1:])


def duplicate_key(rng, lines):
    i = _pick(rng, lines)
    if lines[i].startswith("{"):
        obj = json.loads(lines[i])
        key = rng.choice(sorted(obj))
        text = lines[i][:-1] + f", {json.dumps(key)}: {json.dumps(rng.choice(WRONG_VALUES[:9]))}" + "}"
        return _join(lines[:i] + [text] + lines[i + 1:])
    return _join(lines + [lines[i]])


def duplicate_line(rng, lines):
    i = _pick(rng, lines)
    return _join(lines[:i + 1] + [lines[i]] + lines[i + 1:])


def deep_nesting(rng, lines):
    i = _pick(rng, lines)
    depth = rng.choice([50, 5_000, 200_000])
    return _join(lines[:i] + ["[" * depth + "]" * depth] + lines[i + 1:])


def nul_and_controls(rng, lines):
    i = _pick(rng, lines)
    pos = rng.randrange(len(lines[i]) + 1)
    junk = rng.choice(["\x00", "\r", "\x0b", "\x1e", "\u2028", "\t\t"])
    return _join(lines[:i] + [lines[i][:pos] + junk + lines[i][pos:]] + lines[i + 1:])


def bom(rng, lines):
    return b"\xef\xbb\xbf" + _join(lines)


def blank_and_missing(rng, lines):
    i = _pick(rng, lines)
    choice = rng.randrange(3)
    if choice == 0:
        return _join(lines[:i] + ["", "   "] + lines[i:])
    if choice == 1 and lines[i].startswith("{"):
        obj = json.loads(lines[i])
        obj.pop(rng.choice(sorted(obj)))
        return _join(lines[:i] + [json.dumps(obj)] + lines[i + 1:])
    return _join(lines[:i] + lines[i + 1:])


def qrels_columns(rng, lines):
    i = rng.randrange(len(lines))
    cols = lines[i].split("\t")
    choice = rng.randrange(5)
    if choice == 0:
        text = " ".join(cols)
    elif choice == 1:
        text = "\t".join(cols[:rng.randrange(len(cols))])
    elif choice == 2:
        text = "\t".join(cols + ["extra"])
    elif choice == 3:
        text = "\t".join(cols[:2] + [rng.choice(["inf", "nan", "1e400", "x", "", "-1", "2.7", "1" * 5000])])
    else:
        text = "\t".join(['"' + cols[0]] + cols[1:])
    return _join(lines[:i] + [text] + lines[i + 1:])


CORRUPTIONS: list[Callable] = [truncate_line, truncate_file, bad_utf8, wrong_type, whole_line_type, huge_line,
                               duplicate_key, duplicate_line, deep_nesting, nul_and_controls, bom, blank_and_missing]


# --- readers ---------------------------------------------------------------------------------------------------------


def read_corpus(path: Path, _):
    from negmine.data import load_beir_corpus

    return load_beir_corpus(path)


def read_queries(path: Path, _):
    from negmine.data import load_beir_queries

    return load_beir_queries(path)


def read_qrels(path: Path, lines):
    from negmine.data import load_qrels

    return load_qrels(path)


def read_mined_strict(path: Path, _):
    from negmine.data.mined import read_mined

    return read_mined(path, require_scores=True)


def read_training(path: Path, _):
    from negmine.training import build_rows, read_records

    return build_rows(read_records(path), source=path)


def read_pairs(path: Path, _):
    from negmine.data import load_pairs

    return load_pairs(path)


READERS = [("corpus", "corpus.jsonl", read_corpus), ("queries", "queries.jsonl", read_queries),
           ("qrels", "train.tsv", read_qrels), ("mined", "mined.jsonl", read_mined_strict),
           ("mined", "mined.jsonl", read_training), ("pairs", "pairs.jsonl", read_pairs),
           ("ntuple", "ntuple.jsonl", read_training)]


@contextmanager
def deadline(seconds: int):
    def fire(signum, frame):
        raise TimeoutError(f"reader still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind,name,reader", READERS, ids=[r[2].__name__ + "-" + r[0] for r in READERS])
def test_corrupted_inputs_load_or_fail_with_one_line(kind, name, reader, scifact_lines, tmp_path):
    lines = scifact_lines[kind]
    corruptions = CORRUPTIONS + ([qrels_columns] * 4 if kind == "qrels" else [])
    rng = random.Random(f"{kind}-{reader.__name__}")
    outcomes = {"loaded": 0, "error": 0}
    start = time.perf_counter()
    for case in range(CASES_PER_READER):
        corrupt = corruptions[case % len(corruptions)]
        data = corrupt(rng, list(lines))
        path = tmp_path / f"{case}-{name}"
        path.write_bytes(data)
        where = f"case {case} ({corrupt.__name__}) of {reader.__name__}, file {path}"
        try:
            with deadline(SECONDS_PER_CASE):
                reader(path, lines)
            outcomes["loaded"] += 1
        except DataError as err:
            outcomes["error"] += 1
            message = str(err)
            assert "\n" not in message, f"{where}: multi-line message {message!r}"
            assert len(message) < 2_000, f"{where}: {len(message)}-character message"
            assert str(path) in message or path.name in message, f"{where}: the file is not named: {message}"
            if err.line is None:
                assert any(m in message for m in FILE_LEVEL), f"{where}: no line named: {message}"
        except Exception as err:  # noqa: BLE001 - the failure this test exists to catch
            raise AssertionError(f"{where}: {type(err).__name__}: {str(err)[:300]}") from err
        finally:
            path.unlink()
    assert outcomes["error"] > 0 and outcomes["loaded"] > 0, outcomes  # the corruptions exercise both outcomes
    assert time.perf_counter() - start < 30


def test_a_byte_order_mark_is_read_and_reported(tmp_path, scifact_lines):
    """A JSONL file starting with a UTF-8 BOM (Windows tools, spreadsheet exports) loads, and the report says so."""
    from negmine.data import LoadReport, load_beir_corpus, load_pairs, load_qrels
    from negmine.data.mined import read_mined

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(bom(None, scifact_lines["corpus"]))
    report = LoadReport()
    assert len(load_beir_corpus(corpus, report)) == 30
    assert report.notes == ["corpus.jsonl: starts with a UTF-8 byte-order mark; read as utf-8-sig"]
    assert report.to_dict()["notes"] == report.notes
    qrels = tmp_path / "train.tsv"
    qrels.write_bytes(bom(None, scifact_lines["qrels"]))
    assert len(load_qrels(qrels)) == 30
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_bytes(bom(None, scifact_lines["pairs"]))
    assert "byte-order mark" in load_pairs(pairs).report.notes[0]
    mined = tmp_path / "mined.jsonl"
    mined.write_bytes(bom(None, scifact_lines["mined"]))
    assert len(read_mined(mined)) == 20
    assert LoadReport().to_dict() == {"skipped": {}, "kept_unknown": {}}  # no quirk, no key: same bytes as before


def test_bad_utf8_is_skipped_and_counted_with_on_invalid_skip(tmp_path, scifact_lines):
    from negmine.data import LoadReport, load_beir_corpus

    lines = [line.encode() for line in scifact_lines["corpus"]]
    lines[3] = lines[3][:20] + b"\xff" + lines[3][20:]
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataError, match=r"corpus.jsonl, line 4: not UTF-8 text"):
        load_beir_corpus(path)
    report = LoadReport()
    assert len(load_beir_corpus(path, report, on_invalid="skip")) == 29  # the lines after it are still read
    assert report.skipped == {"corpus.jsonl: not UTF-8": 1}


def test_an_empty_text_names_the_document(tmp_path):
    from negmine.data import load_beir_corpus

    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "text": "fine"}\n{"_id": "doc-42", "title": "", "text": "  "}\n')
    with pytest.raises(DataError, match=r"line 2, field 'text': document 'doc-42' has an empty text"):
        load_beir_corpus(path)
