"""Judge specs from the command line: ``llm:URL@MODEL``, ``llm:FILE.gguf``, ``llm:FOLDER``, ``llm-yes:...``,
``cross-encoder:PATH``, ``embedding:MODEL[@THRESHOLD]``.

- ``llm:http://127.0.0.1:8000/v1@MODEL``: ARHN two-stage judge through an OpenAI-compatible server. Without
  ``@MODEL`` the first model the server lists under ``/v1/models`` is used.
- ``llm:URL1,URL2,...@MODEL``: the same over several servers of one model (e.g. one vLLM per GPU), each request to
  the least busy one (:class:`~negmine.relabel.clients.MultiServerChatClient`); ``--concurrency`` is per server.
- ``llm:PATH.gguf``: in-process through llama-cpp-python.
- ``llm:HF_FOLDER``: in-process through transformers (batched); a folder holding a single ``.gguf`` also works.
- ``llm-yes:<same targets>``: the pointwise judge that reads P(yes) from next-token logits.
- ``cross-encoder:PATH``: a sentence-transformers cross-encoder.
- ``embedding:MODEL[@THRESHOLD]``: a bi-encoder's cosine (:mod:`negmine.relabel.embedding`); MODEL is a preset
  (``minilm``, ``mpnet``, ``embeddinggemma``…), a folder or a hub id; ``@0.6`` sets its threshold (else
  ``--threshold``). Embeddings go through the embedding cache (``$NEGMINE_CACHE``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negmine.errors import ConfigError, ModelNotFoundError, NegmineError
from negmine.relabel.cache import JudgmentCache

KINDS = ("llm", "llm-yes", "cross-encoder", "embedding")


@dataclass
class JudgeOptions:
    """Settings shared by the judge constructors (the CLI's flags)."""

    concurrency: int = 4
    timeout: float = 120.0
    max_retries: int = 4
    window: int = 20
    step: int = 10
    snippet_max_tokens: int = 96
    max_passage_words: int | None = 300
    n_ctx: int = 4096
    n_threads: int | None = None
    batch_size: int = 8
    threshold: float = 0.5
    device: str | None = None
    embedding_cache_dir: str | None = None  # embedding judges: None = $NEGMINE_CACHE or ~/.cache/negmine
    no_embedding_cache: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def split_spec(spec: str) -> tuple[str, str]:
    """``"llm:target"`` -> ``("llm", "target")``, with a suggestion for a misspelt kind."""
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise ConfigError(f"judge spec {spec!r} must look like KIND:TARGET with KIND in {', '.join(KINDS)}")
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown judge kind {kind!r} in {spec!r} (known: {', '.join(KINDS)}){hint}")
    return kind, target


def split_threshold(target: str, default: float) -> tuple[str, float]:
    """``"minilm@0.6"`` -> ``("minilm", 0.6)``; without a numeric ``@`` suffix the target keeps ``default``."""
    model, sep, suffix = target.rpartition("@")
    if not sep:
        return target, default
    try:
        return model, float(suffix)
    except ValueError:
        raise ConfigError(f"embedding judge {target!r}: the part after '@' must be a threshold such as 0.6") from None


def _first_served_model(base_url: str) -> str:
    from negmine._optional import require

    openai = require("openai", "the OpenAI-compatible judge")
    from negmine.relabel.clients import _api_key_from_env

    client = openai.OpenAI(base_url=base_url, api_key=_api_key_from_env(), max_retries=2, timeout=30)
    models = [m.id for m in client.models.list()]
    if not models:
        raise ConfigError(f"{base_url}/models lists no model; name one with llm:{base_url}@MODEL")
    return models[0]


def load_chat_client(target: str, options: JudgeOptions, what: str = "llm judge") -> Any:
    """A chat backend for an ``llm:`` target (URL, ``.gguf`` file or model folder); ``what`` names it in errors."""
    from negmine.relabel import clients

    if target.startswith(("http://", "https://")):
        urls, _, model = target.partition("@")
        base_urls = [u.strip() for u in urls.split(",") if u.strip()]
        bad = [u for u in base_urls if not u.startswith(("http://", "https://"))]
        if bad:
            raise ConfigError(f"llm target {target!r}: {bad[0]!r} is not an http(s) URL")
        model = model or _first_served_model(base_urls[0])
        servers = [clients.OpenAIChatClient(url, model, concurrency=options.concurrency, timeout=options.timeout,
                                            max_retries=options.max_retries) for url in base_urls]
        return servers[0] if len(servers) == 1 else clients.MultiServerChatClient(servers)
    from negmine.encoders.presets import load_error

    kind, location = resolve_llm_target(target, what)
    try:
        if kind == "gguf":
            return clients.LlamaCppChatClient(location, n_ctx=options.n_ctx, n_threads=options.n_threads)
        return clients.TransformersChatClient(location, batch_size=options.batch_size, device=options.device,
                                              max_length=options.n_ctx)
    except (OSError, ValueError) as err:  # not a GGUF / corrupt weights / an offline hub id
        if isinstance(err, NegmineError):
            raise
        raise load_error(what, target, err) from err


def resolve_llm_target(target: str, option: str = "llm judge") -> tuple[str, str]:
    """``("gguf", FILE)`` for a ``.gguf`` file, ``("transformers", FOLDER_OR_HUB_ID)`` for a model folder (or a folder
    holding one ``.gguf``) or a hub id: the model resolver's rules for local LLMs. A missing file or folder, or a
    folder holding no model, is a one-line :class:`~negmine.errors.ModelNotFoundError`."""
    from negmine.encoders.presets import check_model_folder, looks_like_path

    path = Path(target).expanduser()
    if target.endswith(".gguf"):
        if not path.is_file():
            raise ModelNotFoundError(f"{option} {target}: no such GGUF file" if not path.exists() else
                                     f"{option} {target} is not a file (expected a .gguf model file)")
        return "gguf", str(path)
    if path.exists() or looks_like_path(target):
        if path.is_dir() and len(list(path.glob("*.gguf"))) == 1 and not (path / "config.json").exists():
            return "transformers", str(path)
        return "transformers", str(check_model_folder(path, option, markers=("config.json", "adapter_config.json")))
    if target.count("/") == 1 and all(target.split("/")):
        return "transformers", target  # a hub id (online users)
    raise ConfigError(f"llm target {target!r} is neither an http(s) URL, a .gguf file, a model folder nor a hub id")


def load_judge(spec: str, *, cheap: str | None = None, clear_below: float = 0.1, cache: str | None = None,
               options: JudgeOptions | None = None) -> Any:
    """Build the judge for a spec (and, with ``cheap``, a cascade whose first stage is ``cheap``).

    Args:
        spec: the main judge, e.g. ``llm:http://127.0.0.1:8000/v1@qwen``.
        cheap: optional first-stage judge (``embedding:MODEL``, ``cross-encoder:PATH`` or ``llm-yes:...``) of a
            cascade.
        clear_below: cheap score under which a negative is cleared without the main judge.
        cache: JSONL cache file for LLM outputs (``None``: in memory).
        options: backend and prompt settings.
    """
    options = options or JudgeOptions()
    judgment_cache = JudgmentCache(cache)
    judge = _single(spec, judgment_cache, options)
    if cheap:
        from negmine.relabel.cascade import CascadeJudge

        judge = CascadeJudge(_single(cheap, judgment_cache, options), judge, clear_below=clear_below)
        judge.cache = judgment_cache  # type: ignore[attr-defined]
    return judge


def _single(spec: str, cache: JudgmentCache, options: JudgeOptions) -> Any:
    kind, target = split_spec(spec)
    if kind == "embedding":
        from negmine.encoders import EmbeddingCache
        from negmine.relabel.embedding import EmbeddingJudge

        model, threshold = split_threshold(target, options.threshold)
        embedding_cache = None if options.no_embedding_cache else EmbeddingCache(options.embedding_cache_dir)
        return EmbeddingJudge(model, threshold=threshold, cache=embedding_cache, batch_size=options.batch_size)
    if kind == "cross-encoder":
        from negmine.encoders.presets import load_error, resolve_model
        from negmine.relabel.cross_encoder import CrossEncoderJudge

        resolved = resolve_model(target, option="cross-encoder judge")
        try:
            return CrossEncoderJudge(resolved.location, threshold=options.threshold, batch_size=options.batch_size,
                                     device=options.device)
        except (OSError, ValueError) as err:
            if isinstance(err, NegmineError):
                raise
            raise load_error("cross-encoder judge", target, err) from err
    from negmine.relabel.llm import ARHNJudge, PointwiseLLMJudge

    client = load_chat_client(target, options)
    if kind == "llm-yes":
        return PointwiseLLMJudge(client, threshold=options.threshold, cache=cache,
                                 max_passage_words=options.max_passage_words)
    return ARHNJudge(client, cache=cache, window=options.window, step=options.step,
                     snippet_max_tokens=options.snippet_max_tokens, max_passage_words=options.max_passage_words)
