"""Generation backends: one interface, in-process models and inference endpoints (TGI, OpenAI-compatible)."""

from .base import GREEDY, Backend, GenerationRequest, GenerationResult, SamplingParams
from .local import TransformersBackend
from .openai import OpenAIBackend
from .retry import RetryPolicy
from .tgi import TGIBackend

__all__ = [
    "GREEDY",
    "Backend",
    "GenerationRequest",
    "GenerationResult",
    "OpenAIBackend",
    "RetryPolicy",
    "SamplingParams",
    "TGIBackend",
    "TransformersBackend",
]
