"""sentence-transformers models as negmine encoders."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from negmine._optional import require

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "bf16", "bf16-autocast", "int8", "int8-mixed"]
PRECISIONS = ("fp32", "fp16", "bf16", "bf16-autocast", "int8", "int8-mixed")  # the fast ones: encoders/fast.py


def weights_hash(module: Any) -> str:
    """sha256 over every parameter and buffer (names, dtypes, shapes and bytes): the model's identity, not its name."""
    torch = require("torch", "hashing model weights")
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


class SentenceTransformerEncoder:
    """Wraps a :class:`sentence_transformers.SentenceTransformer` (a loaded model, a local folder or a hub id).

    Args:
        model: a ``SentenceTransformer`` or anything ``SentenceTransformer(...)`` accepts.
        query_prompt / corpus_prompt: prefixes (e.g. bge's instruction, e5's ``query: ``/``passage: ``). ``None``
            uses the model's own ``query``/``document`` prompts if its config defines them.
        similarity: ``cosine`` (vectors are L2-normalised, scores are cosines) or ``dot``.
        precision: ``fp32`` (default), ``fp16`` or ``bf16`` weights (fp16/bf16 are for CUDA; on CPU prefer fp32),
            ``bf16-autocast``, ``int8`` / ``int8-mixed`` (CPU dynamic quantization), or ``auto`` (chosen for the
            hardware after an equivalence check; :attr:`precision` is then the choice and :attr:`precision_choice`
            says why); see :mod:`negmine.encoders.fast`.
        max_seq_length: truncate inputs to this many tokens (default: the model's own).
        revision: the hub revision to load (ignored for local folders).
        device: ``cpu``, ``cuda``, ``cuda:1``… (default: sentence-transformers' choice).
        option: the option that named the model (``--retriever``), quoted in the error of a model that fails to load.
        cpu_flags: the CPU feature flags ``auto`` decides on (default: ``/proc/cpuinfo``; tests inject sets).
    """

    def __init__(
        self,
        model: Any,
        *,
        query_prompt: str | None = None,
        corpus_prompt: str | None = None,
        similarity: str = "cosine",
        precision: Precision = "fp32",
        max_seq_length: int | None = None,
        revision: str | None = None,
        device: str | None = None,
        name: str | None = None,
        option: str = "model",
        cpu_flags: frozenset[str] | set[str] | None = None,
    ) -> None:
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"similarity must be 'cosine' or 'dot', got {similarity!r}")
        if precision not in PRECISIONS and precision != "auto":
            raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, got {precision!r}")
        self._model_arg, self._model, self._base = model, None, None
        self.query_prompt, self.corpus_prompt = query_prompt, corpus_prompt
        self.similarity = similarity
        self.max_seq_length, self.revision, self.device = max_seq_length, revision, device
        self.name = name or (model if isinstance(model, str) else type(model).__name__)
        self._weights_hash: str | None = None
        self._option = option
        self.requested_precision = precision
        #: for ``auto``: what was tried, what was chosen and why (recorded in manifests); ``None`` otherwise
        self.precision_choice: dict[str, Any] | None = None
        self._precision: str | None = precision
        if precision == "auto":
            from negmine.encoders.fast import auto_precision_candidate

            candidate, reason = auto_precision_candidate(self._device_type(), cpu_flags)
            self.precision_choice = {"requested": "auto", "candidate": candidate, "reason": reason}
            self._precision = None
            if candidate == "fp32":  # nothing to check: decided without loading the model
                self._precision = "fp32"
                self.precision_choice.update(chosen="fp32", check=None)

    def _device_type(self) -> str:
        if self.device is not None:
            return str(self.device).split(":")[0]
        torch = require("torch", "SentenceTransformerEncoder")
        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def precision(self) -> str:
        """The concrete precision (``auto`` is resolved here, before anything fingerprints or encodes)."""
        if self._precision is None:
            self._precision = self._resolve_auto()
        return self._precision

    def _resolve_auto(self) -> str:
        """Encode a fixed sample in fp32 and in the candidate precision; keep the candidate if every cosine >=
        :data:`~negmine.encoders.fast.AUTO_MIN_COSINE`."""
        from negmine.encoders.fast import AUTO_MIN_COSINE, AUTO_SAMPLE, encode_context, prepare_model

        assert self.precision_choice is not None
        candidate, base = self.precision_choice["candidate"], self._base_model()
        texts = list(AUTO_SAMPLE)
        ref = base.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        model = prepare_model(base, candidate)
        with encode_context(model, candidate):
            got = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        cosines = (np.asarray(ref, dtype=np.float64) * np.asarray(got, dtype=np.float64)).sum(1)
        ok = bool(cosines.min() >= AUTO_MIN_COSINE)
        if not ok and model is base and candidate in ("fp16", "bf16"):
            base.float()  # .to(half) converted in place: back to fp32
        chosen = candidate if ok else "fp32"
        self.precision_choice.update(chosen=chosen, check={"texts": len(texts), "min_cosine_required": AUTO_MIN_COSINE,
                                                           "cosine_min": float(cosines.min()),
                                                           "cosine_mean": float(cosines.mean())})
        logger.info("precision auto: %s (%s; cosine to fp32 >= %.6f)", chosen, self.precision_choice["reason"],
                    cosines.min())
        return chosen

    def _base_model(self) -> Any:
        """The loaded model before any precision is applied (kept only until :attr:`model` is built)."""
        if self._base is None:
            st = require("sentence_transformers", "SentenceTransformerEncoder")
            if isinstance(self._model_arg, st.SentenceTransformer):
                model = self._model_arg
            else:
                try:
                    model = st.SentenceTransformer(self._model_arg, revision=self.revision, device=self.device)
                except (OSError, ValueError) as err:  # offline hub id, corrupt or partial weights
                    from negmine.encoders.presets import load_error

                    raise load_error(self._option, self._model_arg, err) from err
            if self.max_seq_length is not None:
                model.max_seq_length = self.max_seq_length
            self._base = model
        return self._base

    @property
    def model(self) -> Any:
        if self._model is None:
            precision = self.precision  # resolves "auto" first (it may load the model to check the candidate)
            model = self._base_model()
            if precision != "fp32":
                from negmine.encoders.fast import INT8_PRECISIONS, prepare_model

                if precision in INT8_PRECISIONS:  # quantized models are identified by their fp32 weights
                    self._weights_hash = weights_hash(model)
                model = prepare_model(model, precision)
            self._model, self._base = model, None
        return self._model

    def _prompt(self, kind: str) -> str:
        explicit = self.query_prompt if kind == "query" else self.corpus_prompt
        if explicit is not None:
            return explicit
        prompts = getattr(self.model, "prompts", None) or {}
        return prompts.get(kind) or (prompts.get("passage", "") if kind == "document" else "")

    def _encode(self, texts: Sequence[str], kind: str, batch_size: int, show_progress_bar: bool) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        from negmine.encoders.fast import encode_context

        with encode_context(self.model, self.precision):
            emb = self.model.encode(
                list(texts),
                prompt=self._prompt(kind) or None,
                batch_size=batch_size,
                normalize_embeddings=self.similarity == "cosine",
                convert_to_numpy=True,
                show_progress_bar=show_progress_bar,
                **self._route(kind),
            )
        return np.ascontiguousarray(emb, dtype=np.float32)

    def _route(self, kind: str) -> dict[str, str]:
        """``task`` for an asymmetric model (a ``Router``, e.g. negmine's ADORE model): queries through its ``query``
        route, documents through ``document``; nothing for other models."""
        return {"task": kind} if any(type(m).__name__ == "Router" for m in self.model.children()) else {}

    def encode_queries(
        self, queries: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._encode(queries, "query", batch_size, show_progress_bar)

    def encode_corpus(
        self, docs: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._encode(docs, "document", batch_size, show_progress_bar)

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    def fingerprint(self) -> dict[str, Any]:
        """Identity of the vectors this encoder makes. For a local model folder it is memoized on disk (keyed by the
        folder's file paths, sizes and mtimes), so a run whose embeddings are all cached never loads the model."""
        memo = _FingerprintMemo.for_encoder(self)
        cached = memo.read() if memo is not None else None
        if cached is not None:
            return cached
        fingerprint = self._compute_fingerprint()
        if memo is not None:
            memo.write(fingerprint)
        return fingerprint

    def _options(self) -> dict[str, Any]:
        return {"query_prompt": self.query_prompt, "corpus_prompt": self.corpus_prompt, "similarity": self.similarity,
                "precision": self.precision, "max_seq_length": self.max_seq_length, "revision": self.revision}

    def _compute_fingerprint(self) -> dict[str, Any]:
        from negmine.encoders.fast import INT8_PRECISIONS, quantization_recipe

        model = self.model  # loading a quantized model records the hash of its fp32 weights first
        if self._weights_hash is None:
            self._weights_hash = weights_hash(model)
        return {
            "encoder": "sentence-transformers",
            "weights_sha256": self._weights_hash,
            "query_prompt": self._prompt("query"),
            "corpus_prompt": self._prompt("document"),
            "max_seq_length": int(self.model.max_seq_length or 0),
            "similarity": self.similarity,
            "precision": self.precision,
            "modules": [type(m).__name__ for m in self.model],
            **({"quantization": quantization_recipe(self.precision)} if self.precision in INT8_PRECISIONS else {}),
        }


class _FingerprintMemo:
    """A small JSON file under the embedding cache root remembering a model folder's fingerprint."""

    WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".pt")

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_encoder(cls, encoder: SentenceTransformerEncoder) -> _FingerprintMemo | None:
        from negmine.encoders.cache import default_cache_dir

        arg = encoder._model_arg
        if not isinstance(arg, (str, os.PathLike)) or not Path(arg).is_dir():
            return None  # an in-memory model (weights may change between calls) or a hub id: always hash
        folder = Path(arg).resolve()
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in cls.WEIGHT_SUFFIXES)
        stamp = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        payload = json.dumps({"folder": str(folder), "files": stamp, "options": encoder._options()}, sort_keys=True)
        key = hashlib.sha256(payload.encode()).hexdigest()
        return cls(default_cache_dir() / "fingerprints" / f"{key}.json")

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def write(self, fingerprint: dict[str, Any]) -> None:
        from negmine.io import write_json

        write_json(self.path, fingerprint)
