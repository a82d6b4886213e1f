"""``python -m hfevol.testing.tgi_server``: a test server in its own process, for benchmarks and manual runs."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any

from .engines import EchoEngine, Engine
from .faults import FaultPlan
from .tgi_server import TGITestServer

DESCRIPTION = "A strict local stand-in for a Text Generation Inference server, on 127.0.0.1."


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; print ``READY <url>`` once listening."""
    p = argparse.ArgumentParser(prog="python -m hfevol.testing.tgi_server", description=DESCRIPTION)
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--flavour", choices=["tgi", "vllm"], default="tgi", help="TGI's routes and shapes (default) or vLLM's (hfevol.testing.vllm_server)")
    p.add_argument("--max-model-len", type=int, default=8192, help="vllm: the context length (prompt + max_tokens)")
    p.add_argument("--engine", choices=["echo", "model"], default="echo", help="echo (fast, deterministic) or model (the embedded SmolLM2)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds each generation takes at least")
    p.add_argument("--capacity", type=int, default=None, help="generations served at once (default: unlimited)")
    p.add_argument("--max-concurrent-requests", type=int, default=128)
    p.add_argument("--max-input-tokens", type=int, default=8191)
    p.add_argument("--max-total-tokens", type=int, default=8192)
    p.add_argument("--prefill-logprobs", action="store_true", help="like TGI's --enable-prefill-logprobs")
    p.add_argument("--api-key-env", default=None, help="name of an environment variable holding the API key to require")
    p.add_argument("--fault-rate", type=float, default=0.0, help="fraction of generations that fail with a retryable error")
    p.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    args = p.parse_args(argv)
    engine: Engine
    if args.engine == "model":
        from .engines import ModelEngine

        engine = ModelEngine()
    else:
        engine = EchoEngine()
    common: dict[str, Any] = dict(
        latency=args.latency,
        capacity=args.capacity,
        api_key=os.environ[args.api_key_env] if args.api_key_env else None,
        faults=FaultPlan(args.fault_rate, seed=args.seed),
        port=args.port,
    )
    server: TGITestServer
    if args.flavour == "vllm":
        from .vllm_server import VLLMTestServer

        server = VLLMTestServer(engine, max_model_len=args.max_model_len, **common)
    else:
        server = TGITestServer(
            engine,
            max_concurrent_requests=args.max_concurrent_requests,
            max_input_tokens=args.max_input_tokens,
            max_total_tokens=args.max_total_tokens,
            prefill_logprobs=args.prefill_logprobs,
            **common,
        )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with server:
        print(f"READY {server.url}", flush=True)
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
    return 0
