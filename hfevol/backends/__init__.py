"""Generation backends: one interface, in-process models and (later) inference endpoints."""

from .base import GREEDY, Backend, GenerationRequest, GenerationResult, SamplingParams
from .local import TransformersBackend

__all__ = ["GREEDY", "Backend", "GenerationRequest", "GenerationResult", "SamplingParams", "TransformersBackend"]
