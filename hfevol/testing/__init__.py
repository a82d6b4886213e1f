"""Stand-ins for inference servers that cannot run here, for tests, benchmarks and demos.

They speak the real HTTP protocols on 127.0.0.1, so the real, unmodified clients are driven
against them: a TGI/OpenAI-compatible server with fault injection, and its vLLM flavour.
Users test their own pipelines offline with them too (see the README's "Test server").

``tgi_server`` (the server, its life cycle and TGI's routes), ``vllm_server`` (vLLM's
shapes), ``http_handler`` (the HTTP side and faults on the wire), ``validation`` (TGI's
request checks), ``request_log``, ``engines`` (what answers), ``faults``, ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "EchoEngine": "engines",
    "Engine": "engines",
    "Generation": "engines",
    "ModelEngine": "engines",
    "Fault": "faults",
    "FaultPlan": "faults",
    "LoggedRequest": "request_log",
    "TGITestServer": "tgi_server",
    "VLLMTestServer": "vllm_server",
}
__all__ = list(_LAZY)

if TYPE_CHECKING:
    from .engines import EchoEngine, Engine, Generation, ModelEngine
    from .faults import Fault, FaultPlan
    from .request_log import LoggedRequest
    from .tgi_server import TGITestServer
    from .vllm_server import VLLMTestServer


def __getattr__(name: str) -> Any:  # lazy, so that `python -m hfevol.testing.tgi_server` imports the server once
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'hfevol.testing' has no attribute {name!r}")
