"""Many positives per query: memory bounded by the total number of positives, results equal to the loop oracle."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from many_positives import BIG_POSITIVES, OPTIONS, many_positive_world  # noqa: E402
from reference import reference_mine  # noqa: E402


@pytest.fixture(scope="module")
def child_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("many") / "mined.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, str(HERE / "many_positives.py"), str(out), "1000000"], check=True, env=env, timeout=600
    )
    return json.loads(out.read_text())


def test_peak_rss_under_1gb(child_run):
    # the former (queries x depth x largest positive count) broadcast alone was 101 x 5,050 x 5,000 bytes = 2.5 GB
    assert child_run["peak_rss_bytes"] < 1024**3, child_run["peak_rss_bytes"]
    assert child_run["each_depth_max"] >= BIG_POSITIVES + OPTIONS["range_max"]


@pytest.fixture(scope="module")
def world():
    data, enc = many_positive_world()
    query_ids, doc_ids = data.split_query_ids, list(data.corpus)
    q_emb = enc.encode_queries([data.queries[q] for q in query_ids])
    return data, doc_ids, q_emb, enc.encode_corpus([data.doc_text(d) for d in doc_ids]), query_ids


@pytest.mark.parametrize("reference", ["each", "lowest", "highest"])
def test_equals_loop_reference(child_run, world, reference):
    data, doc_ids, q_emb, d_emb, query_ids = world
    expected = reference_mine(
        data,
        doc_ids,
        q_emb,
        d_emb,
        query_ids,
        range_min=0,
        range_max=OPTIONS["range_max"],
        num_negatives=OPTIONS["num_negatives"],
        percentage=OPTIONS["percentage"],
        margin_reference=reference,
    )
    if reference == "each":
        expected = {f"{q}\t{p}": v for (q, p), v in expected.items()}
    got = child_run[reference]
    assert got.keys() == expected.keys()
    assert got == expected
    if reference == "each":
        big = [v for k, v in got.items() if k.startswith("big\t")]
        assert len(big) == BIG_POSITIVES and len({tuple(v) for v in big}) > 1  # the positives differ
        assert np.mean([len(v) for v in big]) > 0
