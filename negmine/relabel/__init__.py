"""False-negative filtering: ARHN-style two-stage LLM relabeling, pointwise P(yes), cross-encoder and cascade judges.

Typical use::

    from negmine.relabel import load_judge, relabel_file
    judge = load_judge("llm:http://127.0.0.1:8000/v1@qwen", cache="runs/x/relabel/cache.jsonl")
    summary = relabel_file("runs/x/mined.jsonl", judge, "runs/x/relabel", mode="both")

The command line does the same: ``negmine relabel --mined runs/x/mined.jsonl --judge llm:... --out runs/x/relabel``.
Nothing heavy (torch, openai, llama_cpp) is imported until a judge that needs it is built.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Label": "negmine.relabel.base",
    "Judgment": "negmine.relabel.base",
    "Judge": "negmine.relabel.base",
    "ChatClient": "negmine.relabel.base",
    "Completion": "negmine.relabel.base",
    "JudgeError": "negmine.relabel.base",
    "ARHNJudge": "negmine.relabel.llm",
    "PointwiseLLMJudge": "negmine.relabel.llm",
    "CrossEncoderJudge": "negmine.relabel.cross_encoder",
    "CascadeJudge": "negmine.relabel.cascade",
    "OpenAIChatClient": "negmine.relabel.clients",
    "LlamaCppChatClient": "negmine.relabel.clients",
    "TransformersChatClient": "negmine.relabel.clients",
    "JudgmentCache": "negmine.relabel.cache",
    "PROMPT_VERSION": "negmine.relabel.prompts",
    "read_mined": "negmine.relabel.arhn",
    "decide": "negmine.relabel.arhn",
    "relabel_records": "negmine.relabel.arhn",
    "relabel_file": "negmine.relabel.arhn",
    "load_judge": "negmine.relabel.factory",
    "JudgeOptions": "negmine.relabel.factory",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'negmine.relabel' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
