"""Finding and loading models: the embedded default and any transformers causal LM."""

from .loading import EMBEDDED_MODEL, LoadedModel, load_model, resolve_model

__all__ = ["EMBEDDED_MODEL", "LoadedModel", "load_model", "resolve_model"]
