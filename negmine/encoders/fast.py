"""Faster CPU/GPU encoding options for :class:`~negmine.encoders.st.SentenceTransformerEncoder` (``precision=``).

==================  ==========================================================================================
``fp32``            the reference.
``fp16`` / ``bf16`` weights cast to half precision (for CUDA; on CPU bf16 is fast only with AVX-512 BF16 / AMX).
``bf16-autocast``   fp32 weights, matrix products in bf16 under ``torch.autocast`` (CUDA, or CPUs with BF16 units).
``int8``            torch dynamic quantization of every ``nn.Linear``: int8 weights (per output channel), int8
                    activations quantized per batch on the fly. CPU only. 1.2–2× faster than fp32 on an AVX2
                    CPU; embeddings move (cosine to fp32 ≈ 0.98 on MiniLM): SciFact nDCG@10 within 0.5 points,
                    but about a third of the mined negatives change. Do not mix it with fp32-mined data.
``int8-mixed``      as ``int8`` but the feed-forward output projections (the layers with the widest activation
                    ranges) stay fp32: closer to fp32 (cosine ≈ 0.99; ~¾ of the negatives unchanged).
``auto``            chosen for the hardware (:func:`auto_precision_candidate`): ``bf16-autocast`` on CPUs with
                    AVX-512 BF16 or AMX (1.81× fp32 throughput measured on such a CPU), ``fp16`` on CUDA, ``fp32``
                    elsewhere (bf16 is ~6× slower than fp32 without BF16 units); a candidate other than fp32 is kept
                    only if its vectors of a fixed sample have cosine >= 0.9999 to fp32's. Resolved before the
                    fingerprint, so the cache key and manifests hold the concrete precision.
==================  ==========================================================================================

Every option is part of the encoder's ``fingerprint()`` (so the embedding cache and persisted indexes never mix
vectors of different precisions); quantized models are fingerprinted by their fp32 weights plus the quantization
recipe. ``benchmarks/encode_speed.py`` measures speed, nDCG@10 and the overlap of the mined negatives.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from negmine._optional import require

logger = logging.getLogger(__name__)

FAST_PRECISIONS = ("bf16-autocast", "int8", "int8-mixed")
#: CPU flags (``/proc/cpuinfo``) of hardware bf16 matrix units: AVX-512 BF16 (Cooper Lake, Zen 4+) and AMX
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: the equivalence check ``auto`` runs before keeping a faster precision
AUTO_MIN_COSINE = 0.9999
AUTO_SAMPLE = (
    "The quick brown fox jumps over the lazy dog.",
    "Hard negatives are documents that look relevant to a query but do not answer it.",
    "Aspirin inhibits cyclooxygenase, reducing the synthesis of prostaglandins and thromboxanes.",
    "In 1969 the Apollo 11 mission landed the first humans on the Moon.",
    "what is the capital of australia",
    "Gradient descent updates parameters in the direction opposite to the gradient of the loss.",
    "Mitochondrial DNA is inherited maternally in most animals, including humans.",
    "A short one.",
)
INT8_PRECISIONS = ("int8", "int8-mixed")
#: suffix of the Linear layers ``int8-mixed`` keeps in fp32 (BERT-style FFN output: ``layer.N.output.dense``)
MIXED_KEEP_FP32 = "output.dense"


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no ``/proc/cpuinfo``, e.g. macOS)."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def auto_precision_candidate(device_type: str, flags: frozenset[str] | set[str] | None = None) -> tuple[str, str]:
    """What ``precision="auto"`` tries on this hardware, and why: ``(precision, reason)``.

    ``flags`` defaults to :func:`cpu_flags` (tests inject sets)."""
    if device_type == "cuda":
        return "fp16", "CUDA device: fp16 tensor cores"
    flags = cpu_flags() if flags is None else flags
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    if found:
        return "bf16-autocast", f"CPU with {' and '.join(found)}"
    return "fp32", "CPU without AVX-512 BF16 or AMX (bf16 there is ~6x slower than fp32)"


def _is_ffn_output(name: str) -> bool:
    return name.endswith(MIXED_KEEP_FP32) and ".attention." not in name


def quantization_recipe(precision: str) -> dict[str, Any] | None:
    """What the fingerprint records about a quantized model (``None`` for non-quantized precisions)."""
    if precision not in INT8_PRECISIONS:
        return None
    torch = require("torch", "int8 encoding")
    return {"method": "torch.ao.quantization.quantize_dynamic", "dtype": "qint8", "granularity": "per-channel",
            "layers": "Linear" if precision == "int8" else f"Linear except FFN {MIXED_KEEP_FP32}",
            "engine": torch.backends.quantized.engine}


def quantize_int8(model: Any, precision: str = "int8") -> Any:
    """A dynamically quantized copy of ``model`` (the original is left untouched)."""
    torch = require("torch", "int8 encoding")
    import warnings

    quant = torch.ao.quantization
    names = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    if precision == "int8-mixed":
        names = [name for name in names if not _is_ffn_output(name)]
    if not names:
        raise ValueError("int8 quantization found no nn.Linear layers to quantize in this model")
    spec = {name: quant.per_channel_dynamic_qconfig for name in names}
    with warnings.catch_warnings():  # torch >= 2.10 flags eager-mode quantization as deprecated; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        quantized = quant.quantize_dynamic(model, spec, dtype=torch.qint8, inplace=False)
    logger.info("quantized %d Linear layers to int8 (%s)", len(names), precision)
    return quantized


def model_device_type(model: Any) -> str:
    device = getattr(model, "device", None)
    return getattr(device, "type", None) or "cpu"


def prepare_model(model: Any, precision: str) -> Any:
    """Apply ``precision`` to a loaded ``SentenceTransformer`` (returns the model to encode with)."""
    if precision in ("fp32", "bf16-autocast"):
        return model
    torch = require("torch", f"{precision} encoding")
    if precision in ("fp16", "bf16"):
        return model.to({"fp16": torch.float16, "bf16": torch.bfloat16}[precision])
    if precision in INT8_PRECISIONS:
        if model_device_type(model) != "cpu":
            raise ValueError(f"precision {precision!r} (torch dynamic quantization) runs on CPU only; on CUDA use "
                             f"fp16 or bf16")
        return quantize_int8(model, precision)
    raise ValueError(f"unknown precision {precision!r}")


@contextlib.contextmanager
def encode_context(model: Any, precision: str) -> Iterator[None]:
    """The context to run ``model.encode`` in: ``torch.autocast(bf16)`` for ``bf16-autocast``, else nothing."""
    if precision != "bf16-autocast":
        yield
        return
    torch = require("torch", "bf16 autocast")
    with torch.autocast(device_type=model_device_type(model), dtype=torch.bfloat16):
        yield
