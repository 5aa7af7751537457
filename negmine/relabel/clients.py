"""Chat backends behind one protocol: an OpenAI-compatible server (HTTP), llama-cpp-python and transformers.

- :class:`OpenAIChatClient` talks to any OpenAI-compatible server (vLLM, llama.cpp's server, TGI, Ollama), the
  production path. Requests run concurrently (``concurrency`` threads); timeouts, connection errors, 429 and 5xx
  are retried with exponential backoff and jitter; a 400 (e.g. a prompt longer than the context) becomes an
  error completion that is recorded as *unsure*; other failures raise :class:`~negmine.relabel.base.JudgeError`.
  The API key comes from ``NEGMINE_LLM_API_KEY`` or ``OPENAI_API_KEY`` and is never logged or written anywhere.
- :class:`MultiServerChatClient` spreads the requests over several such servers serving the same model (one vLLM
  per GPU or node): each request goes to the server with the fewest requests in flight, and one that fails after its
  own retries is tried on the others. Its config (the cache key) is a single server's, so the number of servers
  never invalidates cached judgments.
- :class:`LlamaCppChatClient` runs a GGUF file in-process (``llama-cpp-python``), one request at a time.
- :class:`TransformersChatClient` runs a Hugging Face causal LM in-process, batched with left padding.

Each client also offers ``yes_probability`` for the pointwise judge: P(Yes) / (P(Yes) + P(No)) for the first
answer token, from one forward pass (or the server's ``top_logprobs``).
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from negmine._optional import require
from negmine.errors import ConfigError
from negmine.relabel.base import Completion, JudgeError, Message, Usage

logger = logging.getLogger(__name__)

API_KEY_ENV = ("NEGMINE_LLM_API_KEY", "OPENAI_API_KEY")
YES_WORDS = ("Yes", "yes", "YES")
NO_WORDS = ("No", "no", "NO")


def _api_key_from_env() -> str:
    for name in API_KEY_ENV:
        value = os.environ.get(name)
        if value:
            return value
    return "not-needed"  # local servers (llama.cpp, vLLM without --api-key) accept any key


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    for marker in stop or ():
        position = text.find(marker)
        if position >= 0:
            text = text[:position]
    return text


def _yes_no_probability(top: dict[str, float]) -> float | None:
    """P(yes) from a {token: logprob} map of the first answer token; ``None`` when neither word is present."""
    p_yes = sum(math.exp(lp) for tok, lp in top.items() if tok.strip() in YES_WORDS)
    p_no = sum(math.exp(lp) for tok, lp in top.items() if tok.strip() in NO_WORDS)
    if p_yes + p_no == 0:
        return None
    return p_yes / (p_yes + p_no)


class OpenAIChatClient:
    """Chat completions from an OpenAI-compatible server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model: the served model name (llama.cpp's server accepts any name for its single model).
        concurrency: requests in flight at once.
        timeout: seconds per request.
        max_retries: retries after the first attempt on timeouts, connection errors, 429 and 5xx.
        backoff: base delay in seconds; attempt ``i`` waits ``backoff * 2**i`` plus up to 25% jitter.
        temperature: sampling temperature (0 = greedy, the default for judging).
        seed: passed to servers that support it.
    """

    def __init__(self, base_url: str, model: str, *, concurrency: int = 4, timeout: float = 120.0,
                 max_retries: int = 4, backoff: float = 1.0, temperature: float = 0.0, seed: int | None = 0) -> None:
        openai = require("openai", "the OpenAI-compatible judge")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.temperature = temperature
        self.seed = seed
        self.usage = Usage()
        self._openai = openai
        # the SDK's own retries are off: ours are counted, logged and tested
        self._client = openai.OpenAI(base_url=self.base_url, api_key=_api_key_from_env(), timeout=timeout,
                                     max_retries=0)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._rng = random.Random(seed)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIChatClient(base_url={self.base_url!r}, model={self.model!r}, concurrency={self.concurrency})"

    def get_config_dict(self) -> dict[str, Any]:
        """What determines the answers (the key and the URL do not), used in cache keys and manifests."""
        return {"backend": "openai", "model": self.model, "temperature": self.temperature, "seed": self.seed}

    def _retryable(self, err: Exception) -> bool:
        o = self._openai
        if isinstance(err, (o.APITimeoutError, o.APIConnectionError, o.RateLimitError, o.InternalServerError)):
            return True
        return isinstance(err, o.APIStatusError) and err.status_code >= 500

    def _call(self, **kwargs: Any) -> Any:
        for attempt in range(self.max_retries + 1):
            try:
                with self._slots:
                    self.usage.add(requests=1)
                    return self._client.chat.completions.create(model=self.model, **kwargs)
            except self._openai.BadRequestError:
                raise
            except self._openai.APIError as err:
                if not self._retryable(err):
                    raise JudgeError(f"{self.base_url}: {type(err).__name__}: {_short(err)}") from err
                if attempt == self.max_retries:
                    raise JudgeError(f"{self.base_url}: giving up after {attempt + 1} attempts: "
                                     f"{type(err).__name__}: {_short(err)}") from err
                delay = self.backoff * 2**attempt * (1 + 0.25 * self._rng.random())
                self.usage.add(retries=1)
                logger.warning("%s: %s, retry %d/%d in %.1fs", self.base_url, type(err).__name__, attempt + 1,
                               self.max_retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def complete(self, messages: list[Message], *, max_tokens: int, stop: Sequence[str] | None = None) -> Completion:
        extra = {} if self.seed is None else {"seed": self.seed}
        try:
            response = self._call(messages=messages, max_tokens=max_tokens, temperature=self.temperature,
                                  stop=list(stop) if stop else None, **extra)
        except self._openai.BadRequestError as err:  # e.g. the prompt does not fit: unsure, not fatal
            self.usage.add(errors=1)
            return Completion("", error=f"BadRequestError: {_short(err)}")
        text = (response.choices[0].message.content or "") if response.choices else ""
        usage = response.usage
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        completion_tokens = getattr(usage, "completion_tokens", 0) or 0
        self.usage.add(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return Completion(_cut_at_stop(text, stop), prompt_tokens, completion_tokens)

    def complete_many(self, conversations: Sequence[list[Message]], *, max_tokens: int,
                      stop: Sequence[str] | None = None) -> list[Completion]:
        if len(conversations) <= 1 or self.concurrency == 1:
            return [self.complete(c, max_tokens=max_tokens, stop=stop) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(lambda c: self.complete(c, max_tokens=max_tokens, stop=stop), conversations))

    def yes_probability(self, conversations: Sequence[list[Message]]) -> list[float | None]:
        """P(Yes) of the first answer token from ``top_logprobs`` (the server must return logprobs)."""

        def one(messages: list[Message]) -> float | None:
            try:
                response = self._call(messages=messages, max_tokens=1, temperature=0.0, logprobs=True,
                                      top_logprobs=20)
            except self._openai.BadRequestError as err:
                self.usage.add(errors=1)
                logger.warning("P(yes) request rejected: %s", _short(err))
                return None
            usage = response.usage
            self.usage.add(prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                           completion_tokens=getattr(usage, "completion_tokens", 0) or 0)
            content = response.choices[0].logprobs.content if response.choices[0].logprobs else None
            if not content:
                return None
            top = {alt.token: alt.logprob for alt in content[0].top_logprobs}
            top.setdefault(content[0].token, content[0].logprob)
            return _yes_no_probability(top)

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(one, conversations))


class MultiServerChatClient:
    """Several :class:`OpenAIChatClient` (same model, same settings) used as one, ``concurrency`` = their sum.

    Args:
        clients: one client per server; their ``get_config_dict()`` must agree (same model, temperature, seed).
    """

    def __init__(self, clients: Sequence[OpenAIChatClient]) -> None:
        clients = list(clients)
        if not clients:
            raise ConfigError("MultiServerChatClient needs at least one server")
        configs = [c.get_config_dict() for c in clients]
        if any(config != configs[0] for config in configs[1:]):
            raise ConfigError(f"the servers must serve the same model with the same settings, got {configs}")
        self.clients = clients
        self.concurrency = sum(c.concurrency for c in clients)
        self.usage = Usage()
        for client in clients:  # one set of counters for the judge's report
            client.usage = self.usage
        self._inflight = [0] * len(clients)
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return ",".join(c.base_url for c in self.clients)

    @property
    def model(self) -> str:
        return self.clients[0].model

    def __repr__(self) -> str:
        return f"MultiServerChatClient({self.clients!r})"

    def get_config_dict(self) -> dict[str, Any]:
        return self.clients[0].get_config_dict()

    def _run(self, call: Any) -> Any:
        """``call(client)`` on the least busy server; on a :class:`JudgeError` (its retries spent) the next one."""
        failed: list[int] = []
        while True:
            with self._lock:
                candidates = [i for i in range(len(self.clients)) if i not in failed]
                index = min(candidates, key=lambda i: (self._inflight[i], i))
                self._inflight[index] += 1
            try:
                return call(self.clients[index])
            except JudgeError as err:
                failed.append(index)
                if len(failed) == len(self.clients):
                    raise JudgeError(f"every server failed; last: {err}") from err
                self.usage.add(failovers=1)
                logger.warning("%s failed (%s); trying another server", self.clients[index].base_url, err)
            finally:
                with self._lock:
                    self._inflight[index] -= 1

    def complete(self, messages: list[Message], *, max_tokens: int, stop: Sequence[str] | None = None) -> Completion:
        return self._run(lambda client: client.complete(messages, max_tokens=max_tokens, stop=stop))

    def complete_many(self, conversations: Sequence[list[Message]], *, max_tokens: int,
                      stop: Sequence[str] | None = None) -> list[Completion]:
        if len(conversations) <= 1:
            return [self.complete(c, max_tokens=max_tokens, stop=stop) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(lambda c: self.complete(c, max_tokens=max_tokens, stop=stop), conversations))

    def yes_probability(self, conversations: Sequence[list[Message]]) -> list[float | None]:
        def one(messages: list[Message]) -> float | None:
            return self._run(lambda client: client.yes_probability([messages])[0])

        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(conversations)))) as pool:
            return list(pool.map(one, conversations))


def _short(err: Exception, limit: int = 300) -> str:
    text = str(err)
    return text if len(text) <= limit else text[:limit] + "..."


def _file_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"file": path.name, "size": stat.st_size}


class LlamaCppChatClient:
    """A GGUF model in-process through llama-cpp-python (greedy decoding, one request at a time).

    Args:
        model_path: the ``.gguf`` file.
        n_ctx: context length in tokens.
        n_threads: CPU threads for both prompt processing and generation (``None``: llama.cpp's defaults).
        seed: sampling seed (decoding is greedy anyway).
    """

    concurrency = 1

    def __init__(self, model_path: str | os.PathLike, *, n_ctx: int = 4096, n_threads: int | None = None,
                 seed: int = 0, n_gpu_layers: int = 0) -> None:
        llama_cpp = require("llama_cpp", "the llama-cpp-python judge")
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ConfigError(f"GGUF file not found: {self.model_path}")
        self.n_ctx = n_ctx
        self.seed = seed
        self.usage = Usage()
        self._lock = threading.Lock()
        self._llm = llama_cpp.Llama(model_path=str(self.model_path), n_ctx=n_ctx, n_threads=n_threads,
                                    n_threads_batch=n_threads, seed=seed, n_gpu_layers=n_gpu_layers, verbose=False)
        self._formatter = None

    def get_config_dict(self) -> dict[str, Any]:
        return {"backend": "llama-cpp", **_file_fingerprint(self.model_path), "n_ctx": self.n_ctx, "temperature": 0.0}

    def complete(self, messages: list[Message], *, max_tokens: int, stop: Sequence[str] | None = None) -> Completion:
        with self._lock:
            try:
                response = self._llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                            temperature=0.0, top_k=1, seed=self.seed,
                                                            stop=list(stop) if stop else None)
            except ValueError as err:  # the prompt does not fit into n_ctx
                self.usage.add(errors=1)
                return Completion("", error=f"ValueError: {_short(err)}")
        usage = response.get("usage") or {}
        completion = Completion(response["choices"][0]["message"].get("content") or "",
                                usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        self.usage.add(requests=1, prompt_tokens=completion.prompt_tokens,
                       completion_tokens=completion.completion_tokens)
        return completion

    def complete_many(self, conversations: Sequence[list[Message]], *, max_tokens: int,
                      stop: Sequence[str] | None = None) -> list[Completion]:
        return [self.complete(c, max_tokens=max_tokens, stop=stop) for c in conversations]

    def _prompt_tokens(self, messages: list[Message]) -> list[int]:
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self._llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ConfigError(f"{self.model_path.name} has no chat template; P(yes) needs one")
            vocab = self._llm
            eos = vocab.detokenize([vocab.token_eos()]).decode("utf-8", errors="ignore")
            bos = vocab.detokenize([vocab.token_bos()]).decode("utf-8", errors="ignore")
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        prompt = self._formatter(messages=messages).prompt
        return self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def yes_probability(self, conversations: Sequence[list[Message]]) -> list[float | None]:
        """P(Yes) from the logits of the first answer token (one forward pass per conversation)."""
        import numpy as np

        llm = self._llm
        yes_ids = {t for w in YES_WORDS for t in (llm.tokenize(w.encode(), add_bos=False)[:1] +
                                                  llm.tokenize((" " + w).encode(), add_bos=False)[:1])}
        no_ids = {t for w in NO_WORDS for t in (llm.tokenize(w.encode(), add_bos=False)[:1] +
                                                llm.tokenize((" " + w).encode(), add_bos=False)[:1])}
        results: list[float | None] = []
        with self._lock:
            for messages in conversations:
                tokens = self._prompt_tokens(messages)
                if len(tokens) >= self.n_ctx:
                    results.append(None)
                    continue
                llm.reset()
                llm.eval(tokens)
                logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
                logits -= logits.max()
                probs = np.exp(logits)
                probs /= probs.sum()
                p_yes, p_no = probs[list(yes_ids)].sum(), probs[list(no_ids)].sum()
                self.usage.add(requests=1, prompt_tokens=len(tokens))
                results.append(float(p_yes / (p_yes + p_no)) if p_yes + p_no > 0 else None)
        return results


class TransformersChatClient:
    """A causal LM in-process through transformers, batched (left padding, greedy decoding).

    Args:
        model: a model folder (or hub id for online users), or a folder holding one ``.gguf`` file.
        gguf_file: a GGUF file name inside ``model`` (transformers dequantizes it; needs the ``gguf`` package).
        batch_size: conversations per forward pass / ``generate`` call.
        device: ``"cpu"``, ``"cuda"`` ...; ``None`` picks CUDA when available.
        max_length: prompts longer than this many tokens are not sent; they are recorded as errors (unsure) rather
            than truncated silently.
    """

    def __init__(self, model: str | os.PathLike | Any, *, tokenizer: Any = None, gguf_file: str | None = None,
                 batch_size: int = 8, device: str | None = None, max_length: int = 4096) -> None:
        torch = require("torch", "the transformers judge")
        transformers = require("transformers", "the transformers judge")
        self.batch_size = batch_size
        self.max_length = max_length
        self.concurrency = 1
        self.usage = Usage()
        self._torch = torch
        self._lock = threading.Lock()
        if isinstance(model, (str, os.PathLike)):
            folder = Path(model)
            if gguf_file is None and folder.is_dir() and not (folder / "config.json").exists():
                ggufs = sorted(folder.glob("*.gguf"))
                if len(ggufs) == 1:
                    gguf_file = ggufs[0].name
            kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            self.name = f"{folder.name}/{gguf_file}" if gguf_file else str(model)
            self.tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(str(model), **kwargs)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(str(model), **kwargs)
        else:
            if tokenizer is None:
                raise ConfigError("pass tokenizer= together with an in-memory model")
            self.model, self.tokenizer = model, tokenizer
            self.name = type(model).__name__
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.model.to(device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._yes_no: tuple[list[int], list[int]] | None = None

    def get_config_dict(self) -> dict[str, Any]:
        return {"backend": "transformers", "model": self.name, "temperature": 0.0}

    def _encode(self, conversations: Sequence[list[Message]]) -> tuple[Any, list[bool]]:
        prompts = [self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                   for c in conversations]
        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        fits = [n <= self.max_length for n in lengths]
        kept = [p for p, ok in zip(prompts, fits, strict=True) if ok]
        batch = self.tokenizer(kept, return_tensors="pt", padding=True, add_special_tokens=False) if kept else None
        return (batch.to(self.device) if batch is not None else None), fits

    def complete_many(self, conversations: Sequence[list[Message]], *, max_tokens: int,
                      stop: Sequence[str] | None = None) -> list[Completion]:
        results: list[Completion] = []
        for start in range(0, len(conversations), self.batch_size):
            chunk = conversations[start:start + self.batch_size]
            with self._lock, self._torch.inference_mode():
                batch, fits = self._encode(chunk)
                texts: list[tuple[str, int, int]] = []
                if batch is not None:
                    output = self.model.generate(**batch, max_new_tokens=max_tokens, do_sample=False,
                                                 pad_token_id=self.tokenizer.pad_token_id)
                    width = batch["input_ids"].shape[1]
                    for row in range(output.shape[0]):
                        new = output[row, width:]
                        n_prompt = int(batch["attention_mask"][row].sum())
                        n_new = int((new != self.tokenizer.pad_token_id).sum())
                        texts.append((self.tokenizer.decode(new, skip_special_tokens=True), n_prompt, n_new))
            it = iter(texts)
            for ok in fits:
                if not ok:
                    self.usage.add(errors=1)
                    results.append(Completion("", error=f"prompt longer than max_length={self.max_length}"))
                    continue
                text, n_prompt, n_new = next(it)
                self.usage.add(requests=1, prompt_tokens=n_prompt, completion_tokens=n_new)
                results.append(Completion(_cut_at_stop(text, stop), n_prompt, n_new))
        return results

    def _yes_no_ids(self) -> tuple[list[int], list[int]]:
        if self._yes_no is None:
            def first_ids(words: Sequence[str]) -> list[int]:
                ids = set()
                for word in words:
                    for variant in (word, " " + word):
                        encoded = self.tokenizer(variant, add_special_tokens=False)["input_ids"]
                        # keep only a first token that really spells the word (not <unk>, not a lone "N")
                        if encoded and self.tokenizer.decode(encoded[:1]).strip().lower() == word.lower():
                            ids.add(encoded[0])
                return sorted(ids)

            yes, no = first_ids(YES_WORDS), first_ids(NO_WORDS)
            if not yes or not no:
                raise ConfigError("the tokenizer has no single first token for 'Yes'/'No'; P(yes) is undefined")
            self._yes_no = (yes, no)
        return self._yes_no

    def yes_probability(self, conversations: Sequence[list[Message]]) -> list[float | None]:
        """P(Yes) / (P(Yes) + P(No)) of the first answer token, one batched forward pass per ``batch_size``."""
        torch = self._torch
        yes, no = self._yes_no_ids()
        results: list[float | None] = []
        for start in range(0, len(conversations), self.batch_size):
            chunk = conversations[start:start + self.batch_size]
            with self._lock, torch.inference_mode():
                batch, fits = self._encode(chunk)
                probs = []
                if batch is not None:
                    logits = self.model(**batch).logits[:, -1, :].float()
                    p = torch.softmax(logits, dim=-1)
                    p_yes, p_no = p[:, yes].sum(-1), p[:, no].sum(-1)
                    probs = (p_yes / (p_yes + p_no)).tolist()
                    self.usage.add(requests=len(probs), prompt_tokens=int(batch["attention_mask"].sum()))
            it = iter(probs)
            results.extend(next(it) if ok else None for ok in fits)
        return results
