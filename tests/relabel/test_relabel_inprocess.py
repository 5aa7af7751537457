"""In-process judges on tiny random models built from configs: transformers LLM (batched), P(yes), cross-encoder,
and the cascade."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from negmine.testing import importorskip

torch = importorskip("torch")
transformers = importorskip("transformers")
tokenizers = importorskip("tokenizers")

from negmine.relabel.api import relabel_records  # noqa: E402
from negmine.relabel.base import Label  # noqa: E402
from negmine.relabel.cache import JudgmentCache  # noqa: E402
from negmine.relabel.cascade import CascadeJudge  # noqa: E402
from negmine.relabel.clients import TransformersChatClient  # noqa: E402
from negmine.relabel.llm import ARHNJudge, PointwiseLLMJudge  # noqa: E402
from negmine.relabel.prompts import pointwise_messages, stage1_messages  # noqa: E402
from negmine.relabel.testing import OracleScript, ScriptedChatClient  # noqa: E402

WORDS = ("yes no Yes No ANSWER NO_ANSWER : the a of is what causes scurvy vitamin c lack sailors ships rickets "
         "aspirin heart passage query answer <query> </query> <passage> </passage> . , ? [1] [2] [3] >").split()
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def word_tokenizer(extra=()):
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "<|system|>", "<|user|>", "<|assistant|>", "</s>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(special + list(WORDS) + list(extra)))}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.decoder = tokenizers.decoders.WordPiece(prefix="##")
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                eos_token="</s>", cls_token="[CLS]", sep_token="[SEP]")


@pytest.fixture(scope="module")
def tiny_llm():
    tokenizer = word_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                      max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
                                      eos_token_id=tokenizer.eos_token_id)
    return transformers.LlamaForCausalLM(config), tokenizer


CONVERSATIONS = [stage1_messages("what causes scurvy ?", "lack of vitamin c"),
                 stage1_messages("aspirin ?", "the heart"),
                 stage1_messages("what is the query ?", "sailors of the ships " * 5),
                 stage1_messages("rickets", "a")]


def test_batched_generation_equals_one_at_a_time(tiny_llm):
    model, tokenizer = tiny_llm
    batched = TransformersChatClient(model, tokenizer=tokenizer, batch_size=4, device="cpu")
    single = TransformersChatClient(model, tokenizer=tokenizer, batch_size=1, device="cpu")
    a = batched.complete_many(CONVERSATIONS, max_tokens=6)
    b = single.complete_many(CONVERSATIONS, max_tokens=6)
    assert [c.text for c in a] == [c.text for c in b]
    assert all(c.completion_tokens > 0 and c.prompt_tokens > 0 for c in a)
    assert batched.usage.get("requests") == 4


def test_yes_probability_batched_equals_single_and_is_a_probability(tiny_llm):
    model, tokenizer = tiny_llm
    convs = [pointwise_messages("what causes scurvy ?", p) for p in ("lack of vitamin c", "ships", "a " * 30)]
    batched = TransformersChatClient(model, tokenizer=tokenizer, batch_size=3, device="cpu").yes_probability(convs)
    single = [TransformersChatClient(model, tokenizer=tokenizer, batch_size=1, device="cpu").yes_probability([c])[0]
              for c in convs]
    assert batched == pytest.approx(single, abs=1e-5)
    assert all(0.0 < p < 1.0 for p in batched)


def test_prompts_longer_than_max_length_are_errors_not_truncations(tiny_llm):
    model, tokenizer = tiny_llm
    client = TransformersChatClient(model, tokenizer=tokenizer, device="cpu", max_length=300)
    out = client.complete_many([stage1_messages("q", "short"), stage1_messages("q", "word " * 400)], max_tokens=3)
    assert out[0].error is None and out[1].error and "max_length" in out[1].error


def test_arhn_judge_through_transformers_records_every_pair(tiny_llm):
    model, tokenizer = tiny_llm
    judge = ARHNJudge(TransformersChatClient(model, tokenizer=tokenizer, device="cpu"), snippet_max_tokens=4,
                      rank_max_tokens=8)
    record = {"query_id": "q", "query": "what causes scurvy ?", "positive_ids": ["p"],
              "positives": ["lack of vitamin c"], "positive_scores": [1.0], "negative_ids": ["a", "b"],
              "negatives": ["sailors", "rickets"], "negative_scores": [0.5, 0.4]}
    records, rows, summary = relabel_records([record], judge)
    assert len(rows) == 3
    # a random model rarely follows the format; whatever it said is recorded, nothing is dropped silently: the
    # summary counts the rows' decisions, and the output record holds what they say
    decisions = Counter(r["decision"] for r in rows if r["role"] == "negative")
    assert (summary.relabeled, summary.filtered, summary.kept, summary.unsure) == (
        decisions["relabel"], decisions["filter"], decisions["keep"], decisions["unsure"])
    out = records[0]
    assert len(out.positives) == 1 + decisions["relabel"]
    assert len(out.negatives) == decisions["keep"] + decisions["unsure"] - summary.unsure_dropped
    assert summary.usage["stage1_calls"] == 3


class ScriptedYesClient:
    """Test double of a logit reader: P(yes) from a fixed table keyed by passage substring."""

    concurrency = 1

    def __init__(self, table):
        self.table = table
        self.seen = []

    def get_config_dict(self):
        return {"backend": "scripted-yes"}

    def yes_probability(self, conversations):
        out = []
        for messages in conversations:
            content = messages[-1]["content"]
            self.seen.append(content)
            out.append(next((p for key, p in self.table.items() if key in content), None))
        return out


PASSAGES = {"P": ("Scurvy is caused by a lack of vitamin C.", 0.95, "lack of vitamin C"),
            "A": ("Vitamin C deficiency leads to scurvy in sailors.", 0.97, "Vitamin C deficiency leads to scurvy"),
            "B": ("Sailors ate limes on ships.", 0.3, None),
            "C": ("Rickets is caused by a lack of vitamin D.", 0.02, None),
            "D": ("The weather at sea was cold.", 0.01, None)}
RECORD = {"query_id": "q", "query": "What causes scurvy?", "positive_ids": ["P"], "positives": [PASSAGES["P"][0]],
          "positive_scores": [0.9], "negative_ids": list("ABCD"), "negatives": [PASSAGES[k][0] for k in "ABCD"],
          "negative_scores": [0.8, 0.7, 0.6, 0.5]}


def test_pointwise_judge_ranks_by_p_yes_and_labels_by_threshold():
    client = ScriptedYesClient({text: p for text, p, _ in PASSAGES.values()})
    judge = PointwiseLLMJudge(client, threshold=0.5, unsure_band=(0.25, 0.5))
    judgments = judge.judge(RECORD["query"], RECORD["positives"] + RECORD["negatives"])
    assert [j.rank for j in judgments] == [1, 0, 2, 3, 4]
    assert [j.label for j in judgments] == [Label.POSITIVE, Label.POSITIVE, Label.UNSURE, Label.NEGATIVE,
                                           Label.NEGATIVE]
    out, rows, summary = relabel_records([RECORD], judge)
    assert [r["decision"] for r in rows[1:]] == ["relabel", "unsure", "keep", "keep"]
    assert judge.judge(RECORD["query"], RECORD["positives"]) and len(client.seen) == 5  # second call: cached


def test_pointwise_scores_are_cached_per_sub_batch_so_a_killed_run_keeps_them(tmp_path):
    class DiesOnSecondCall(ScriptedYesClient):
        calls = 0

        def yes_probability(self, conversations):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().yes_probability(conversations)

    table = {f"passage {i}": i / 10 for i in range(6)}
    cache = tmp_path / "cache.jsonl"
    pairs = [("q", f"passage {i}") for i in range(6)]  # sub-batches of 4 (4 x concurrency 1)
    with pytest.raises(KeyboardInterrupt):
        PointwiseLLMJudge(DiesOnSecondCall(table), cache=JudgmentCache(cache)).score_pairs(pairs)
    assert len(JudgmentCache(cache)) == 4
    resumed = ScriptedYesClient(table)
    assert PointwiseLLMJudge(resumed, cache=JudgmentCache(cache)).score_pairs(pairs) == [i / 10 for i in range(6)]
    assert len(resumed.seen) == 2


def test_cascade_sends_only_uncleared_negatives_to_the_llm():
    cheap = PointwiseLLMJudge(ScriptedYesClient({text: p for text, p, _ in PASSAGES.values()}), name="cheap")
    llm_client = ScriptedChatClient(OracleScript({text: (p, a) for text, p, a in PASSAGES.values()}))
    cascade = CascadeJudge(cheap, ARHNJudge(llm_client, max_passage_words=None), clear_below=0.05)
    out, rows, summary = relabel_records([RECORD], cascade)
    llm_passages = {OracleScript({t: (p, a) for t, p, a in PASSAGES.values()}).passages(c)[0]
                    for c in llm_client.calls if "Rank the" not in c[-1]["content"]}
    assert llm_passages == {PASSAGES[k][0] for k in "PAB"}  # C and D were cleared
    by_id = {r["passage_id"]: r for r in rows}
    assert by_id["A"]["decision"] == "relabel" and by_id["A"]["judge"].startswith("arhn")
    assert by_id["C"]["decision"] == "keep" and by_id["C"]["judge"] == "cheap" and by_id["C"]["rank"] == 4
    assert by_id["D"]["rank"] == 5 and by_id["D"]["details"]["cleared"]
    assert out[0].positive_ids == ["P", "A"] and out[0].negative_ids == ["B", "C", "D"]
    assert cascade.usage.get("cleared") == 2 and cascade.usage.get("escalated") == 2
    assert summary.usage["cleared"] == 2


def test_cascade_with_everything_cleared_makes_no_llm_call():
    cheap = PointwiseLLMJudge(ScriptedYesClient({text: p for text, p, _ in PASSAGES.values()}))
    llm_client = ScriptedChatClient(lambda m: "NO_ANSWER")
    record = {**RECORD, "negative_ids": ["C", "D"], "negatives": [PASSAGES["C"][0], PASSAGES["D"][0]],
              "negative_scores": [0.6, 0.5]}
    out, rows, _ = relabel_records([record], CascadeJudge(cheap, ARHNJudge(llm_client), clear_below=0.05))
    assert llm_client.calls == []
    assert [r["rank"] for r in rows] == [1, 2, 3] and out[0].negative_ids == ["C", "D"]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    words = {w for text, _, _ in PASSAGES.values() for w in text.lower().replace(".", " .").split()}
    tokenizer = word_tokenizer(sorted(words))
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                     num_hidden_layers=2, num_attention_heads=4, num_labels=1,
                                     max_position_embeddings=128)
    model = transformers.BertForSequenceClassification(config)
    path = tmp_path_factory.mktemp("tiny_ce")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_cross_encoder_judge_and_cascade(tiny_cross_encoder):
    from negmine.relabel.cross_encoder import CrossEncoderJudge

    judge = CrossEncoderJudge(str(tiny_cross_encoder), device="cpu")
    passages = RECORD["positives"] + RECORD["negatives"]
    judgments = judge.judge(RECORD["query"], passages)
    scores = [j.score for j in judgments]
    assert all(0.0 <= s <= 1.0 for s in scores)
    expected_order = sorted(range(5), key=lambda i: (-scores[i], i))
    assert [j.rank for j in judgments] == [expected_order.index(i) for i in range(5)]
    assert judge.model.predict([(RECORD["query"], passages[1])])[0] == pytest.approx(scores[1], abs=1e-5)
    # cascade: clear everything below the median negative score; the LLM sees the positive + the rest
    median = sorted(scores[1:])[2]
    llm_client = ScriptedChatClient(lambda m: "[1] > [2] > [3]" if "Rank the" in m[-1]["content"] else "NO_ANSWER")
    cascade = CascadeJudge(judge, ARHNJudge(llm_client), clear_below=median)
    _, rows, _ = relabel_records([RECORD], cascade)
    stage1 = [c for c in llm_client.calls if "Rank the" not in c[-1]["content"]]
    assert len(stage1) == 1 + sum(s >= median for s in scores[1:])
    assert sum(bool(r.get("details", {}).get("cleared")) for r in rows) == sum(s < median for s in scores[1:])
    json.dumps(rows)  # judgments stay JSON-serialisable
