"""Test stand-ins that speak real protocols: a TGI/OpenAI-compatible server on 127.0.0.1 with fault injection."""

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
    "LoggedRequest": "tgi_server",
    "TGITestServer": "tgi_server",
}
__all__ = list(_LAZY)

if TYPE_CHECKING:
    from .engines import EchoEngine, Engine, Generation, ModelEngine
    from .faults import Fault, FaultPlan
    from .tgi_server import LoggedRequest, TGITestServer


def __getattr__(name: str) -> Any:  # lazy, so that `python -m hfevol.testing.tgi_server` imports the server once
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'hfevol.testing' has no attribute {name!r}")
