"""negmine.pseudo: pseudo queries from a corpus (ICT sentences, LLM doc2query) written as a BEIR folder."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from negmine.data import load_data
from negmine.errors import ConfigError, DataError
from negmine.pseudo import (
    GENERATIONS,
    PseudoConfig,
    choose_documents,
    clean_generated,
    make_pseudo_queries,
    sentence_queries,
    split_sentences,
)
from negmine.relabel.testing import ScriptedChatClient

DOCS = {
    "d1": ("Scurvy", "Scurvy is caused by a lack of vitamin C. Sailors on long voyages were affected. Citrus fruit, "
                     "e.g. lemons and limes, prevents it in 9.5 of 10 cases."),
    "d2": ("", "Rickets follows a lack of vitamin D in children. Bones soften and bend under the weight of the body."),
    "d3": ("Aspirin", "Aspirin lowers the risk of a second heart attack. It inhibits platelets."),
    "d4": ("", "Short."),
}


def beir_folder(root: Path, extra: int = 0) -> Path:
    """A BEIR folder of DOCS (and ``extra`` more one-sentence documents)."""
    (root / "qrels").mkdir(parents=True)
    docs = {**DOCS, **{f"x{i}": ("", f"Extra document number {i} about nothing.") for i in range(extra)}}
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, (title, text) in docs.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in (("q1", "what causes scurvy"), ("q2", "does aspirin prevent heart attacks")):
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td3\t1\n", encoding="utf-8")
    return root


def test_sentences_split_at_full_stops_but_not_at_abbreviations_or_decimals():
    text = DOCS["d1"][1]
    assert split_sentences(text) == ["Scurvy is caused by a lack of vitamin C.",
                                     "Sailors on long voyages were affected.",
                                     "Citrus fruit, e.g. lemons and limes, prevents it in 9.5 of 10 cases."]
    assert split_sentences("Smith et al. Showed it. Then (B) followed! Did it? Yes.") == [
        "Smith et al. Showed it.", "Then (B) followed!", "Did it?", "Yes."]
    assert split_sentences("  ") == []


def test_sentence_queries_are_sentences_of_their_document_drawn_per_document():
    texts = {d: f"{t} {x}".strip() for d, (t, x) in DOCS.items()}
    queries, missing = sentence_queries(texts, list(texts), seed=3, min_words=4, max_words=30)
    assert missing == 1  # d4 has no sentence of 4+ words
    assert [q.doc_id for q in queries] == ["d1", "d2", "d3"]
    for q in queries:
        assert q.query_id == f"pseudo-{q.doc_id}" and q.text in texts[q.doc_id] and len(q.text.split()) >= 4
    # a document's query depends on the seed and the document, not on which other documents were drawn
    alone, _ = sentence_queries(texts, ["d2"], seed=3, min_words=4, max_words=30)
    assert alone[0] == queries[1]
    draws = Counter(sentence_queries(texts, ["d1"], seed=s, min_words=4, max_words=30)[0][0].text for s in range(60))
    assert len(draws) == 3  # every fitting sentence of d1 gets drawn under some seed


def test_documents_are_drawn_uniformly_and_returned_in_corpus_order():
    ids = [f"d{i}" for i in range(100)]
    picked = choose_documents(ids, 10, seed=1)
    assert len(set(picked)) == 10 and picked == sorted(picked, key=ids.index)
    assert picked == choose_documents(ids, 10, seed=1) != choose_documents(ids, 10, seed=2)
    assert choose_documents(ids, None, 0) == ids == choose_documents(ids, 500, 0)
    counts = Counter(d for s in range(400) for d in choose_documents(ids, 10, seed=s))
    assert min(counts.values()) >= 15 and max(counts.values()) <= 75  # 40 expected per document
    with pytest.raises(ConfigError, match="at least 1"):
        choose_documents(ids, 0, 0)


@pytest.mark.parametrize(("reply", "query"), [
    ("What causes scurvy?", "What causes scurvy?"),
    ('Query: "vitamin C deficiency scurvy"\nExplanation: it asks...', "vitamin C deficiency scurvy"),
    ("\n\n**Search query:** aspirin heart attack", "aspirin heart attack"),
    ("", None),
    ("word " * 80, None),  # a copied passage, not a query
])
def test_generated_answers_are_cleaned_to_one_query(reply, query):
    assert clean_generated(reply) == query


def test_the_folder_holds_the_pseudo_split_and_the_merged_one_over_the_same_corpus(tmp_path):
    source = beir_folder(tmp_path / "src")
    result = make_pseudo_queries(PseudoConfig(data=str(source), out=str(tmp_path / "out"), min_words=4,
                                              merge="train", show_progress_bar=False))
    out = result.out_dir
    assert result.stats["queries"] == 3 and result.stats["unusable"] == 1 and result.splits == ["pseudo",
                                                                                                "train+pseudo"]
    assert (out / "corpus.jsonl").resolve() == (source / "corpus.jsonl").resolve()  # linked, not copied
    assert (out / "qrels" / "test.tsv").resolve() == (source / "qrels" / "test.tsv").resolve()
    pseudo = load_data(out, "pseudo")
    assert sorted(pseudo.split_query_ids) == ["pseudo-d1", "pseudo-d2", "pseudo-d3"]
    assert pseudo.positives("pseudo-d3") == ["d3"] and pseudo.queries["pseudo-d3"] in pseudo.doc_text("d3")
    merged = load_data(out, "train+pseudo")
    assert sorted(merged.split_query_ids) == ["pseudo-d1", "pseudo-d2", "pseudo-d3", "q1"]
    assert load_data(out, "test").split_query_ids == ["q2"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "pseudo" and manifest["config"]["method"] == "sentence"
    # rerunning writes the same bytes (links kept, files rewritten atomically)
    before = (out / "queries.jsonl").read_bytes(), (out / "qrels" / "train+pseudo.tsv").read_bytes()
    make_pseudo_queries(PseudoConfig(data=str(source), out=str(out), min_words=4, merge="train",
                                     show_progress_bar=False))
    assert ((out / "queries.jsonl").read_bytes(), (out / "qrels" / "train+pseudo.tsv").read_bytes()) == before


def test_bad_options_and_data_fail_with_the_file_or_option_named(tmp_path):
    source = beir_folder(tmp_path / "src")
    with pytest.raises(ConfigError, match="inside the data folder"):
        make_pseudo_queries(PseudoConfig(data=str(source), out=str(source / "pseudo"), show_progress_bar=False))
    with pytest.raises(DataError, match=r"no qrels split 'dev'.*splits: test, train"):
        make_pseudo_queries(PseudoConfig(data=str(source), out=str(tmp_path / "o"), merge="dev",
                                         show_progress_bar=False))
    with pytest.raises(ConfigError, match="needs --model"):
        PseudoConfig(data=str(source), method="llm")
    with pytest.raises(ConfigError, match="method='t5'"):
        PseudoConfig(data=str(source), method="t5")
    with pytest.raises(ConfigError, match="min_words"):
        PseudoConfig(min_words=10, max_words=5)
    (source / "queries.jsonl").write_text(json.dumps({"_id": "pseudo-d1", "text": "taken"}) + "\n")
    with pytest.raises(DataError, match="pseudo-d1.*already a query id") as err:
        make_pseudo_queries(PseudoConfig(data=str(source), out=str(tmp_path / "o2"), min_words=4,
                                         show_progress_bar=False))
    assert "queries.jsonl" in str(err.value)


def test_llm_queries_resume_from_their_cache_after_a_killed_run(tmp_path):
    source = beir_folder(tmp_path / "src", extra=4)  # 8 documents: two sub-batches of 4 answers

    def script(messages):
        passage = messages[-1]["content"].split("Passage:\n", 1)[1]
        return f"Query: what about {passage.split()[0].lower()}?"

    cfg = PseudoConfig(data=str(source), out=str(tmp_path / "out"), method="llm", model="unused",
                       show_progress_bar=False)
    killed = ScriptedChatClient(script, fail_after=6)  # killed inside the second sub-batch
    with pytest.raises(KeyboardInterrupt):
        make_pseudo_queries(cfg, client=killed)
    assert len((tmp_path / "out" / GENERATIONS).read_text().splitlines()) == 4  # the finished sub-batch is kept
    resumed = ScriptedChatClient(script)
    result = make_pseudo_queries(cfg, client=resumed)
    assert len(resumed.calls) == 4  # only the documents not answered before the kill
    assert [q.text for q in result.queries][:4] == ["what about scurvy?", "what about rickets?",
                                                    "what about aspirin?", "what about short.?"]
    assert len(result.queries) == 8 and result.stats["unusable"] == 0
    again = ScriptedChatClient(script)
    make_pseudo_queries(cfg, client=again)
    assert again.calls == []


def test_cli_writes_the_folder_and_prints_its_counts(tmp_path):
    from typer.testing import CliRunner

    from negmine.cli import app

    source = beir_folder(tmp_path / "src")
    result = CliRunner().invoke(app, ["pseudo", "--data", str(source), "--out", str(tmp_path / "out"), "--n", "2",
                                      "--min-words", "4", "--merge", "train", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "train+pseudo" in result.output
    assert json.loads((tmp_path / "out" / "pseudo.json").read_text())["documents"] == 2
