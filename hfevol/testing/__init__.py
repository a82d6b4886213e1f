"""Test stand-ins that speak real protocols: a TGI/OpenAI-compatible server on 127.0.0.1 with fault injection."""

from .engines import EchoEngine, Engine, Generation, ModelEngine
from .faults import Fault, FaultPlan
from .tgi_server import LoggedRequest, TGITestServer

__all__ = ["EchoEngine", "Engine", "Fault", "FaultPlan", "Generation", "LoggedRequest", "ModelEngine", "TGITestServer"]
