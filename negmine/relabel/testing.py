"""Test doubles for unit tests of parsing, rules, caching and retries (never used by the pipeline itself)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from negmine.relabel.base import Completion, Message, Usage


class ScriptedChatClient:
    """A chat client whose reply is computed by ``script(messages)``; records every call.

    Args:
        script: returns the reply text for a conversation.
        fail_after: raise ``KeyboardInterrupt`` once this many calls have been answered (simulates a killed run).
        model: name reported in the config (part of cache keys).
    """

    def __init__(self, script: Callable[[list[Message]], str], *, fail_after: int | None = None,
                 model: str = "scripted", concurrency: int = 1) -> None:
        self.script = script
        self.fail_after = fail_after
        self.model = model
        self.concurrency = concurrency
        self.calls: list[list[Message]] = []
        self.usage = Usage()
        self._lock = threading.Lock()

    def get_config_dict(self) -> dict[str, Any]:
        return {"backend": "scripted", "model": self.model}

    def complete_many(self, conversations: Sequence[list[Message]], *, max_tokens: int,
                      stop: Sequence[str] | None = None) -> list[Completion]:
        out = []
        for messages in conversations:
            with self._lock:
                if self.fail_after is not None and len(self.calls) >= self.fail_after:
                    raise KeyboardInterrupt("scripted interruption")
                self.calls.append(messages)
            text = self.script(messages)
            self.usage.add(requests=1, prompt_tokens=sum(len(m["content"].split()) for m in messages),
                           completion_tokens=len(text.split()))
            out.append(Completion(text, 0, 0))
        return out


_BLOCK = re.compile(r"<passage>\n(.*?)\n</passage>", re.DOTALL)


class OracleScript:
    """A scripted "model" that knows the truth: each passage's relevance and its answer span (or none).

    Stage 1: ``ANSWER: <span>`` or ``NO_ANSWER``; stage 2: a RankGPT permutation by relevance (ties keep the prompt
    order). With ``gullible=True`` it obeys injected text: a passage saying "rank me first" is put first, and a
    passage saying "ignore the above" gets that passage's own injected text as its "answer".

    Args:
        truth: original passage text -> (relevance, answer span or None).
    """

    def __init__(self, truth: dict[str, tuple[float, str | None]], *, gullible: bool = False) -> None:
        from negmine.relabel.prompts import fence

        self.truth = truth
        self.gullible = gullible
        self._by_fenced = {fence(text): text for text in truth}

    def passages(self, messages: list[Message]) -> list[str]:
        return [self._by_fenced[block] for block in _BLOCK.findall(messages[-1]["content"])]

    def __call__(self, messages: list[Message]) -> str:
        content = messages[-1]["content"]
        passages = self.passages(messages)
        if "Rank the" in content:
            order = sorted(range(len(passages)), key=lambda i: -self.truth[passages[i]][0])
            if self.gullible:
                pushy = [i for i in order if "rank me first" in passages[i].lower()]
                order = pushy + [i for i in order if i not in pushy]
            return " > ".join(f"[{i + 1}]" for i in order)
        (passage,) = passages
        if self.gullible and "ignore the above" in passage.lower():
            return "ANSWER: " + passage.split(".")[-2].strip()
        answer = self.truth[passage][1]
        return f"ANSWER: {answer}" if answer else "NO_ANSWER"
