"""``llm:URL1,URL2@MODEL``: requests spread over two real HTTP servers on loopback (in-process stubs), failover when
one is down, and the same cache key as one server."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openai")

from test_relabel_retries import FlakyServer, completion_body  # noqa: E402,F401

from negmine.errors import ConfigError  # noqa: E402
from negmine.relabel.clients import MultiServerChatClient, OpenAIChatClient  # noqa: E402
from negmine.relabel.factory import JudgeOptions, load_chat_client  # noqa: E402


def echo(body):
    return "echo:" + body["messages"][-1]["content"]


def conversations(n):
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


def test_requests_are_spread_over_both_servers_and_answers_keep_their_order():
    with FlakyServer(reply=echo, delay=0.05) as a, FlakyServer(reply=echo, delay=0.05) as b:
        client = load_chat_client(f"{a.url},{b.url}@m", JudgeOptions(concurrency=2, max_retries=1))
        assert isinstance(client, MultiServerChatClient) and client.concurrency == 4
        results = client.complete_many(conversations(24), max_tokens=5)
    assert [r.text for r in results] == [f"echo:question {i}" for i in range(24)]
    assert len(a.requests) + len(b.requests) == 24
    assert len(a.requests) >= 6 and len(b.requests) >= 6  # least-busy routing uses both
    assert client.usage.get("requests") == 24 and client.usage.get("prompt_tokens") == 24 * 11


def test_a_failing_server_is_skipped_after_its_retries():
    with FlakyServer([503] * 100, reply=echo) as down, FlakyServer(reply=echo) as up:
        clients = [OpenAIChatClient(down.url, "m", max_retries=1, backoff=0.01),
                   OpenAIChatClient(up.url, "m", max_retries=1, backoff=0.01)]
        client = MultiServerChatClient(clients)
        results = client.complete_many(conversations(6), max_tokens=5)
    assert [r.text for r in results] == [f"echo:question {i}" for i in range(6)]
    assert len(up.requests) == 6 and client.usage.get("failovers") >= 1


def test_every_server_down_raises_a_judge_error():
    from negmine.relabel.base import JudgeError

    with FlakyServer([500] * 100) as a, FlakyServer([500] * 100) as b:
        client = MultiServerChatClient([OpenAIChatClient(s.url, "m", max_retries=0) for s in (a, b)])
        with pytest.raises(JudgeError, match="every server failed"):
            client.complete(conversations(1)[0], max_tokens=5)


def test_cache_key_is_one_servers_and_specs_are_checked():
    one = load_chat_client("http://127.0.0.1:9/v1@m", JudgeOptions())
    two = load_chat_client("http://127.0.0.1:9/v1,http://127.0.0.1:10/v1@m", JudgeOptions())
    assert isinstance(one, OpenAIChatClient)
    assert two.get_config_dict() == one.get_config_dict()
    assert two.base_url == "http://127.0.0.1:9/v1,http://127.0.0.1:10/v1" and two.model == "m"
    with pytest.raises(ConfigError, match="not an http"):
        load_chat_client("http://127.0.0.1:9/v1,localhost:10@m", JudgeOptions())
    with pytest.raises(ConfigError, match="same model"):
        MultiServerChatClient([OpenAIChatClient("http://127.0.0.1:9/v1", "a"),
                               OpenAIChatClient("http://127.0.0.1:10/v1", "b")])


def test_arhn_relabel_over_two_servers_matches_one(tmp_path):
    from negmine.relabel.api import relabel_file
    from negmine.relabel.cache import JudgmentCache
    from negmine.relabel.llm import ARHNJudge

    mined = tmp_path / "mined.jsonl"
    mined.write_text("".join(json.dumps({
        "query_id": f"q{i}", "query": f"what is {i}?", "positive_ids": [f"p{i}"], "positives": [f"P {i}"],
        "positive_scores": [1.0], "negative_ids": [f"n{i}a", f"n{i}b"], "negatives": [f"N {i} a", f"N {i} b"],
        "negative_scores": [0.5, 0.4]}) + "\n" for i in range(6)))
    with FlakyServer() as a, FlakyServer() as b:
        single = ARHNJudge(OpenAIChatClient(a.url, "m"), cache=JudgmentCache(tmp_path / "one.jsonl"))
        relabel_file(mined, single, tmp_path / "one", show_progress_bar=False)
        served_by_one = len(a.requests)
        multi = ARHNJudge(MultiServerChatClient([OpenAIChatClient(s.url, "m", concurrency=2) for s in (a, b)]),
                          cache=JudgmentCache(tmp_path / "two.jsonl"))
        relabel_file(mined, multi, tmp_path / "two", show_progress_bar=False)
    assert len(b.requests) > 0 and len(a.requests) - served_by_one + len(b.requests) == served_by_one
    for name in ("mined.jsonl", "judgments.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
