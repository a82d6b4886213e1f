"""hfevol: evolve seed instructions into better instruction-tuning data.

The package root is lazy: ``import hfevol`` loads no torch, transformers or datasets;
each name below is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "EvolInstruct": "hfevol.evolution",
    "AutoEvolInstruct": "hfevol.evolution",
    "Elimination": "hfevol.evolution",
    "evolve_rounds": "hfevol.evolution",
    "split_rounds": "hfevol.evolution",
    "Respond": "hfevol.respond",
    "to_alpaca": "hfevol.formats",
    "add_messages": "hfevol.formats",
    "ALL_OPERATIONS": "hfevol.evolution",
    "DEPTH_OPERATIONS": "hfevol.evolution",
    "Backend": "hfevol.backends",
    "GenerationRequest": "hfevol.backends",
    "GenerationResult": "hfevol.backends",
    "SamplingParams": "hfevol.backends",
    "TransformersBackend": "hfevol.backends",
    "TGIBackend": "hfevol.backends",
    "OpenAIBackend": "hfevol.backends",
    "RetryPolicy": "hfevol.backends",
    "CachedBackend": "hfevol.cache",
    "RequestCache": "hfevol.cache",
    "EMBEDDED_MODEL": "hfevol.models",
    "load_model": "hfevol.models",
    "builtin_sample": "hfevol.io",
    "load_rows": "hfevol.io",
    "write_output": "hfevol.io",
    "publish": "hfevol.publish",
    "publish_from": "hfevol.publish",
    "list_releases": "hfevol.publish",
    "Score": "hfevol.scoring",
    "EndpointScore": "hfevol.scoring.endpoint",
    "select": "hfevol.scoring.select",
    "install_metrics": "hfevol.metric_install",
    # CAR, teacher selection (hfevol.car holds the rest: the metrics, GeneratorSpec, CarResult)
    "StudentLoss": "hfevol.car",
    "ClassifierReward": "hfevol.car",
    "JudgeReward": "hfevol.car",
    "ProbabilityJudgeReward": "hfevol.car",
    "compare": "hfevol.car",
    "generate_responses": "hfevol.car",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from .backends import Backend, GenerationRequest, GenerationResult, OpenAIBackend, RetryPolicy, SamplingParams, TGIBackend, TransformersBackend
    from .cache import CachedBackend, RequestCache
    from .car import ClassifierReward, JudgeReward, ProbabilityJudgeReward, StudentLoss, generate_responses
    from .car.compare import compare  # not `from .car import compare`: mypy takes that for the submodule car/compare.py
    from .evolution import ALL_OPERATIONS, DEPTH_OPERATIONS, AutoEvolInstruct, Elimination, EvolInstruct, evolve_rounds, split_rounds
    from .formats import add_messages, to_alpaca
    from .io import builtin_sample, load_rows, write_output
    from .metric_install import install_metrics
    from .models import EMBEDDED_MODEL, load_model
    from .publish import list_releases, publish, publish_from
    from .respond import Respond
    from .scoring import Score
    from .scoring.endpoint import EndpointScore
    from .scoring.select import select


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hfevol' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
