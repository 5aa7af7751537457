"""The OpenAI-compatible client against a real HTTP server on loopback: retries, backoff, errors, API-key hygiene."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from negmine.testing import importorskip

importorskip("openai")

from negmine.relabel.api import relabel_file  # noqa: E402
from negmine.relabel.base import JudgeError  # noqa: E402
from negmine.relabel.cache import JudgmentCache  # noqa: E402
from negmine.relabel.clients import OpenAIChatClient  # noqa: E402
from negmine.relabel.llm import ARHNJudge  # noqa: E402

SECRET = "sk-test-SECRET-do-not-log-12345"


def completion_body(text: str) -> bytes:
    return json.dumps({
        "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }).encode()


class FlakyServer:
    """A real HTTP server: answers ``statuses`` in turn (then 200 forever) and records each request."""

    def __init__(self, statuses=(), reply=lambda body: "NO_ANSWER", delay=0.0):
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append({"auth": self.headers.get("Authorization"), "body": body,
                                           "time": time.monotonic()})
                    status = outer.statuses.pop(0) if outer.statuses else 200
                if delay:
                    time.sleep(delay)
                payload = completion_body(reply(body)) if status == 200 else b'{"error": {"message": "busy"}}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


MESSAGES = [{"role": "user", "content": "hello"}]


def test_retries_503_then_succeeds_with_backoff():
    with FlakyServer([503, 503]) as server:
        client = OpenAIChatClient(server.url, "m", max_retries=3, backoff=0.05)
        completion = client.complete(MESSAGES, max_tokens=5)
    assert completion.text == "NO_ANSWER" and completion.prompt_tokens == 11
    assert len(server.requests) == 3
    assert client.usage.get("retries") == 2
    gaps = [b["time"] - a["time"] for a, b in zip(server.requests, server.requests[1:])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # exponential backoff


def test_gives_up_after_max_retries_with_a_clear_error():
    with FlakyServer([500] * 10) as server:
        client = OpenAIChatClient(server.url, "m", max_retries=2, backoff=0.01)
        with pytest.raises(JudgeError, match="giving up after 3 attempts"):
            client.complete(MESSAGES, max_tokens=5)
    assert len(server.requests) == 3


def test_bad_request_becomes_an_error_completion_not_a_crash():
    with FlakyServer([400]) as server:
        client = OpenAIChatClient(server.url, "m", max_retries=3, backoff=0.01)
        completion = client.complete(MESSAGES, max_tokens=5)
    assert completion.error and "BadRequest" in completion.error
    assert len(server.requests) == 1  # 4xx is not retried


def test_auth_errors_are_not_retried():
    with FlakyServer([401]) as server:
        client = OpenAIChatClient(server.url, "m", max_retries=3, backoff=0.01)
        with pytest.raises(JudgeError, match="AuthenticationError"):
            client.complete(MESSAGES, max_tokens=5)
    assert len(server.requests) == 1


def test_timeouts_are_retried():
    with FlakyServer(delay=0.5) as server:
        client = OpenAIChatClient(server.url, "m", max_retries=1, backoff=0.01, timeout=0.1)
        with pytest.raises(JudgeError, match="Timeout"):
            client.complete(MESSAGES, max_tokens=5)
        time.sleep(0.6)
    assert len(server.requests) == 2


def test_requests_run_concurrently():
    with FlakyServer(delay=0.3) as server:
        client = OpenAIChatClient(server.url, "m", concurrency=4)
        start = time.monotonic()
        results = client.complete_many([MESSAGES] * 8, max_tokens=5)
        elapsed = time.monotonic() - start
    assert len(results) == 8 and all(r.text == "NO_ANSWER" for r in results)
    assert elapsed < 8 * 0.3 * 0.6  # well under the sequential time


def test_api_key_is_sent_but_never_logged_or_written(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NEGMINE_LLM_API_KEY", SECRET)
    mined = tmp_path / "mined.jsonl"
    mined.write_text(json.dumps({"query_id": "q", "query": "what?", "positive_ids": ["p"], "positives": ["P text"],
                                 "positive_scores": [1.0], "negative_ids": ["n"], "negatives": ["N text"],
                                 "negative_scores": [0.5]}) + "\n")

    def reply(body):
        return "[1] > [2]" if "Rank the" in body["messages"][-1]["content"] else "NO_ANSWER"

    caplog.set_level(logging.DEBUG)
    with FlakyServer([503], reply=reply) as server:
        client = OpenAIChatClient(server.url, "m", backoff=0.01)
        judge = ARHNJudge(client, cache=JudgmentCache(tmp_path / "out" / "cache.jsonl"))
        summary = relabel_file(mined, judge, tmp_path / "out", show_progress_bar=False)
    assert all(r["auth"] == f"Bearer {SECRET}" for r in server.requests)
    assert summary["usage"]["retries"] == 1
    assert SECRET not in repr(client) and SECRET not in json.dumps(judge.get_config_dict())
    assert SECRET not in caplog.text
    for path in (tmp_path / "out").iterdir():
        assert SECRET not in path.read_text(), path.name
