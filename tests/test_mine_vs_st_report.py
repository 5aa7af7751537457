"""benchmarks/mine_vs_st.py --many-positives: the row comparison and the .md written from the .json report."""

import pytest


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("mine_vs_st")


def test_compare_rows(script):
    st = [["q1", "p1", ["a", "b"]], ["q1", "p2", ["a", "b"]], ["q2", "p3", ["c", "d"]]]
    nm = [["q1", "p1", ["a", "b"]], ["q1", "p2", ["a", "x"]], ["q3", "p4", ["e", "f"]], ["q3", "p5", ["e", "g"]]]
    out = script.compare_rows(st, nm)
    assert out == {
        "rows": 4,
        "queries": 2,
        "rows_both_keep": 2,
        "queries_both_keep": 1,
        "overlap_on_rows_both_keep": 3 / 4,
        "identical_rows": 1,
    }
    assert script.compare_rows(st, [])["overlap_on_rows_both_keep"] is None


def test_report_quotes_the_json(script, tmp_path):
    run = {
        "seconds": 12.34,
        "process_wall_seconds": 20.0,
        "peak_rss_bytes": 700 * 2**20,
        "load_average_1min": {"min": 1.0, "mean": 2.25, "max": 3.5},
    }
    stats = {
        "pairs": {"written": 900, "total": 1000},
        "search": {"depth_mean": 150.2, "depth_max": 260, "blocks": 1},
        "warnings": [],
    }
    nm = {
        **run,
        "rows": 900,
        "queries": 41,
        "rows_both_keep": 80,
        "queries_both_keep": 9,
        "overlap_on_rows_both_keep": 0.5,
        "identical_rows": 30,
        "stats": stats,
        "config": {"margin_reference": "each"},
        "loaded_torch": True,
    }
    report = {
        "command": "python benchmarks/mine_vs_st.py --many-positives",
        "commit": "abc1234",
        "hardware": {"cpu": "Test CPU", "cores": 2, "cpu_flags": "avx2", "python": "3.11.7"},
        "data": {"name": "trec-dl19", "split": "test", "docs": 14581, "queries": 43, "pairs": 1000},
        "settings": {"range_max": 50, "percentage": 0.95, "st_relative_margin": 0.05, "num_negatives": 7},
        "tools": {
            "st": {**run, "rows": 100, "queries": 10, "corpus_embeddings_from_negmine_cache": True},
            "negmine": nm,
            "negmine-lowest": {**nm, "overlap_on_rows_both_keep": 1.0, "config": {"margin_reference": "lowest"}},
        },
    }
    out = tmp_path / "r.md"
    script.write_report(out, report)
    text = out.read_text()
    assert "Command: `python benchmarks/mine_vs_st.py --many-positives`" in text and "Commit: `abc1234`" in text
    assert "| queries kept (of 43) | 10 (23%) | 41 (95%) | 41 (95%) |" in text
    assert "50.0% on 80 rows (queries: 9)" in text and "100.0% on 80 rows" in text
    assert "| peak RSS of its process (MiB) | 700 | 700 | 700 |" in text
    assert "1.0 / 2.2 / 3.5" in text and "900 of 1,000 (query, positive) rows" in text


def test_default_mode_report_is_written_from_its_figures(script):
    figures = {"data": "scifact", "split": "train", "queries": 809, "docs": 5183, "model": "all-MiniLM-L6-v2",
               "range_max": 50, "percentage": 0.95, "num_negatives": 5, "batch_size": 32,
               "st": {"seconds": 315.2, "rows": 783},
               "negmine_cold": {"seconds": 280.8, "rows": 782, "ratio_vs_st": 280.8 / 315.2},
               "negmine_warm": {"seconds": 0.1, "rows": 782, "ratio_vs_st": 0.1 / 315.2},
               "negative_overlap": 0.999, "overlap_queries": 693}
    text = script.mine_vs_st_markdown(figures)
    assert "| negmine mine, cold (empty cache) | 280.8 | 0.89 | 782 | 99.9% on 693 queries |" in text
    assert "| sentence-transformers `mine_hard_negatives` (faiss) | 315.2 | 1.00 | 783 | — |" in text
    assert "scifact train, 809 queries, 5,183 docs" in text and "relative_margin 0.05" in text
