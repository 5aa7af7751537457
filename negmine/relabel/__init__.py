"""False-negative filtering: ARHN-style two-stage LLM relabeling, pointwise P(yes), cross-encoder and cascade judges.

Typical use::

    from negmine.relabel import load_judge, relabel_file
    judge = load_judge("llm:http://127.0.0.1:8000/v1@qwen", cache="runs/x/relabel/cache.jsonl")
    summary = relabel_file("runs/x/mined.jsonl", judge, "runs/x/relabel", mode="both")

The command line does the same: ``negmine relabel --mined runs/x/mined.jsonl --judge llm:... --out runs/x/relabel``.
Nothing heavy (torch, openai, llama_cpp) is imported until a judge that needs it is built.

Judges (all behind :class:`~negmine.relabel.base.Judge`; the ARHN rules in :mod:`negmine.relabel.arhn` apply to all):

========================  =================================================================================
``ARHNJudge``             two LLM stages: verbatim answer snippet or NO_ANSWER, then listwise ranking (sliding
                          window). Prompts are *ARHN-style*: the paper's exact prompts are not published.
``PointwiseLLMJudge``     P(yes) from the first answer token's logits: one forward pass per pair.
``CrossEncoderJudge``     a sentence-transformers reranker's probability.
``EmbeddingJudge``        a bi-encoder's cosine (``embedding:MODEL@THRESHOLD``): the cheapest first stage.
``CascadeJudge``          a cheap judge clears confident negatives; the LLM judges the rest.
========================  =================================================================================

LLM backends: ``OpenAIChatClient`` (any OpenAI-compatible server: vLLM, llama.cpp, TGI, Ollama; concurrent, with
retries), ``LlamaCppChatClient`` (GGUF in-process), ``TransformersChatClient`` (batched in-process).

Writing your own judge takes one class with a ``name``, ``judge(query, passages, num_positives)`` returning one
:class:`~negmine.relabel.base.Judgment` per passage (a 0-based ``rank`` within the candidate set, and a ``label`` or a
verified ``answer``), and ``get_config_dict()``; ``judge_many(items)`` is optional and lets it batch many queries::

    from negmine.relabel.base import Judgment, Label

    class LengthJudge:  # a toy: longer passages "answer" better
        name = "length"

        def get_config_dict(self):
            return {"type": "length"}

        def judge(self, query, passages, num_positives=1):
            order = sorted(range(len(passages)), key=lambda i: -len(passages[i]))
            return [Judgment(Label.POSITIVE if len(p) > 200 else Label.NEGATIVE, score=float(len(p)),
                             rank=order.index(i), judge=self.name) for i, p in enumerate(passages)]
"""

from __future__ import annotations

from negmine._lazy import lazy_exports

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
    "EmbeddingJudge": "negmine.relabel.embedding",
    "OpenAIChatClient": "negmine.relabel.clients",
    "LlamaCppChatClient": "negmine.relabel.clients",
    "TransformersChatClient": "negmine.relabel.clients",
    "JudgmentCache": "negmine.relabel.cache",
    "PROMPT_VERSION": "negmine.relabel.prompts",
    "read_mined": "negmine.data.mined",
    "MinedRecord": "negmine.data.mined",
    "decide": "negmine.relabel.arhn",
    "relabel_records": "negmine.relabel.api",
    "relabel_file": "negmine.relabel.api",
    "RelabelSummary": "negmine.relabel.api",
    "load_judge": "negmine.relabel.factory",
    "JudgeOptions": "negmine.relabel.factory",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
