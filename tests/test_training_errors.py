"""Training errors name what to fix: the --loss-arg a loss rejects, the file and the negatives-per-query histogram."""

from __future__ import annotations

import json

import pytest

from negmine.errors import ConfigError, DataError


@pytest.mark.parametrize("loss,args,message", [
    ("infonce", {"temperature": -1}, r"--loss-arg temperature=-1 is out of range; expected a value in \(0, inf\] "
                                     r"\(loss 'infonce'\)"),
    ("infonce", {"temperature": "abc"}, r"--loss-arg temperature='abc' is not a number \(loss 'infonce'\)"),
    ("soft-infonce", {"temperature": 0}, r"--loss-arg temperature=0 is out of range"),
    ("mixing", {"temperature": -0.5}, r"--loss-arg temperature=-0.5 is out of range; .* \(loss 'mixing'\)"),
])
def test_a_rejected_loss_argument_is_a_config_error_naming_the_option(loss, args, message):
    pytest.importorskip("torch")
    from negmine.training import build_loss

    with pytest.raises(ConfigError, match=message) as info:
        build_loss(loss, None, args)
    assert "\n" not in str(info.value)


def test_too_few_negatives_names_the_file_and_the_histogram(tmp_path):
    from negmine.training import build_rows, read_records

    def record(qid, n):
        return {"query_id": qid, "query": f"query {qid}", "positive_ids": ["p"], "positives": ["a positive"],
                "positive_scores": [], "negative_ids": [f"n{i}" for i in range(n)],
                "negatives": [f"negative {i}" for i in range(n)], "negative_scores": []}

    path = tmp_path / "mined.jsonl"
    path.write_text("".join(json.dumps(record(f"q{i}", n)) + "\n" for i, n in enumerate([0, 1, 1, 2, 2, 2])))
    with pytest.raises(DataError) as info:
        build_rows(read_records(path), num_negatives=3, source=path)
    assert str(info.value) == (f"{path}: no query has 3 negatives (negatives per query: 0 x 1 query, 1 x 2 queries, "
                               "2 x 3 queries); lower num_negatives (--num-negatives) or mine more")
