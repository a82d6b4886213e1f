"""A strict local stand-in for a Text Generation Inference server, on 127.0.0.1.

TGI cannot run here and nothing on PyPI serves its API, so tests and benchmarks drive the
real clients against this server. It speaks TGI's native routes (``/``, ``/generate``,
``/tokenize``, ``/info``, ``/health``, ``/metrics``) and the OpenAI routes TGI serves
(``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``), with TGI's JSON shapes,
status codes and validation messages. Behind it is an :mod:`engine <hfevol.testing.engines>`:
the real embedded model, or a fast echo.

It can also behave like a loaded production server:

- ``latency`` and ``capacity``: every generation holds one of ``capacity`` slots for at
  least ``latency`` seconds, so the server completes at most ``capacity / latency``
  requests per second (what the benchmark measures the client against);
- ``max_concurrent_requests``: like TGI, requests beyond it get 429 ``overloaded``;
- ``faults``: a :class:`~hfevol.testing.faults.FaultPlan` of status codes, delays,
  dropped connections and malformed bodies;
- ``api_key``: like TGI's ``--api-key``, the generation routes (not ``/info``) need
  ``Authorization: Bearer <key>``;
- ``record_headers``: keep each request's headers in the log (:attr:`LoggedRequest.headers`,
  :meth:`TGITestServer.headers_seen`), so that tests can prove which credentials were sent;
- ``prefill_logprobs``: like TGI's ``--enable-prefill-logprobs``. With it,
  ``decoder_input_details=true`` returns ``details.prefill`` (each prompt token's id, text
  and log-probability, the first one null). Without it, TGI 3 answers with an empty
  ``prefill`` list and no error, and so does this server.

Every request is recorded in :attr:`TGITestServer.log`, so that tests can prove what was
(not) sent. :class:`~hfevol.testing.VLLMTestServer` is its vLLM flavour. Run it alone with
``python -m hfevol.testing.tgi_server --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .engines import EchoEngine, Engine, Generation
from .faults import BODY_FAULTS, Fault, FaultPlan

POST_ROUTES = frozenset({"/", "/generate", "/v1/chat/completions", "/v1/completions", "/tokenize"})
"""TGI's routes that take a body (streaming is not served); like TGI's ``--api-key``, the key guards exactly these."""


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it."""

    seq: int
    method: str
    route: str
    body: Any
    status: int
    """HTTP status sent; 0 when the connection was dropped without an answer."""
    fault: str | None
    started: float
    finished: float
    headers: tuple[tuple[str, str], ...] | None = None
    """The request's headers, names lower-cased, in the order sent (only with ``record_headers``)."""

    @property
    def prompt_key(self) -> tuple[str, Any] | None:
        """(prompt text, seed) of a generation request: which row's request this was."""
        b = self.body if isinstance(self.body, dict) else {}
        if self.route == "/v1/chat/completions":
            return json.dumps(b.get("messages"), sort_keys=True), b.get("seed")
        if self.route in ("/", "/generate"):
            return b.get("inputs"), (b.get("parameters") or {}).get("seed")
        if self.route == "/v1/completions":
            prompt = b.get("prompt")
            return (tuple(prompt) if isinstance(prompt, list) else prompt), b.get("seed")  # a token-id prompt (vLLM)
        return None


class _ValidationError(Exception):
    pass


class TGITestServer:
    """A TGI-compatible HTTP server on 127.0.0.1 (see the module docstring)."""

    POST_ROUTES = POST_ROUTES

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        latency: float = 0.0,
        capacity: int | None = None,
        max_concurrent_requests: int = 128,
        max_input_tokens: int = 8191,
        max_total_tokens: int = 8192,
        max_stop_sequences: int = 4,
        max_top_n_tokens: int = 5,
        api_key: str | None = None,
        prefill_logprobs: bool = False,
        faults: FaultPlan | None = None,
        record_headers: bool = False,
        port: int = 0,
    ) -> None:
        self.engine: Engine = engine or EchoEngine()
        self.latency = latency
        self.max_concurrent_requests = max_concurrent_requests
        self.max_input_tokens = max_input_tokens
        self.max_total_tokens = max_total_tokens
        self.max_stop_sequences = max_stop_sequences
        self.max_top_n_tokens = max_top_n_tokens
        self.api_key = api_key
        self.prefill_logprobs = prefill_logprobs
        self.faults = faults or FaultPlan()
        self.record_headers = record_headers
        self._slots = threading.BoundedSemaphore(capacity) if capacity else None
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._in_system = 0
        self.peak_in_flight = 0
        """Most generation requests the server held at once (queued or running)."""
        self._connections: set[socket.socket] = set()
        self._httpd = _Server(("127.0.0.1", port), _make_handler(self))
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "TGITestServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once, like a crashed server: the port refuses connections and open ones are cut."""
        if self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> "TGITestServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests read -------------------------------------------------------------

    @property
    def log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def generations(self, *, status: int | None = 200) -> list[LoggedRequest]:
        """Logged requests to the generation routes (with the given status; None: any)."""
        return [r for r in self.log if r.route in FaultPlan.GENERATION_ROUTES and (status is None or r.status == status)]

    def headers_seen(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path, headers) of every logged request, headers names lower-cased (needs ``record_headers``)."""
        if not self.record_headers:
            raise RuntimeError("start the server with record_headers=True to record request headers")
        return [(r.method, r.route, dict(r.headers or ())) for r in self.log]

    def _append(self, method: str, route: str, body: Any, status: int, fault: str | None, started: float, headers: Any = None) -> None:
        kept = tuple((k.lower(), v) for k, v in headers.items()) if self.record_headers and headers is not None else None
        with self._lock:
            self._log.append(LoggedRequest(len(self._log), method, route, body, status, fault, started, time.time(), kept))

    # -- request handling ------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "model_id": self.engine.model_id,
            "model_sha": self.engine.model_sha,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": self.max_concurrent_requests,
            "max_best_of": 2,
            "max_stop_sequences": self.max_stop_sequences,
            "max_input_tokens": self.max_input_tokens,
            "max_total_tokens": self.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": 4,
            "router": "text-generation-router",
            "version": "3.3.6-hfevol-test",
            "sha": None,
            "docker_label": None,
        }

    def handle_get(self, route: str) -> tuple[int, Any]:
        if route in ("/health", "/", "/ping"):
            return 200, None
        if route == "/info":
            return 200, self.info()
        if route == "/v1/models":
            return 200, {"object": "list", "data": [{"id": self.engine.model_id, "object": "model", "created": 0, "owned_by": self.engine.model_id}]}
        if route == "/metrics":
            n = len(self.log)
            ok = sum(1 for r in self.log if r.status == 200)
            return 200, f"tgi_request_count {n}\ntgi_request_success {ok}\n"
        return 404, None

    def bad_json(self, raw: bytes) -> tuple[int, Any]:
        """The answer to a body that is not JSON."""
        return 422, f"Failed to parse the request body as JSON: {raw[:60]!r}"

    def handle_post(self, route: str, body: Any, fault: Fault | None) -> tuple[int, Any]:
        if route == "/tokenize":
            if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
                return _invalid("`inputs` must be a string")
            return 200, self.engine.tokenize(body["inputs"], bool(body.get("add_special_tokens", True)))
        with self._lock:
            if self._in_system >= self.max_concurrent_requests:
                return 429, {"error": "Model is overloaded", "error_type": "overloaded"}
            self._in_system += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_system)
        try:
            if route in ("/", "/generate"):
                return self._generate(route, body, fault)
            if route == "/v1/chat/completions":
                return self._chat(body, fault)
            return self._completions(body, fault)
        except _ValidationError as exc:
            return _invalid(str(exc))
        finally:
            with self._lock:
                self._in_system -= 1

    def _run(self, prompt: str, *, max_new_tokens: int | None, temperature: float | None, top_p: float | None, seed: Any, stop: Any, top_n: Any, fault: Fault | None) -> Generation:
        if not prompt:
            raise _ValidationError("`inputs` cannot be empty")
        if temperature is not None and temperature <= 0:
            raise _ValidationError("`temperature` must be strictly positive")
        if top_p is not None and not 0.0 < top_p < 1.0:
            raise _ValidationError("`top_p` must be > 0.0 and < 1.0")
        if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or max_new_tokens <= 0):
            raise _ValidationError("`max_new_tokens` must be strictly positive")
        stop = list(stop or [])
        if len(stop) > self.max_stop_sequences:
            raise _ValidationError(f"`stop` supports up to {self.max_stop_sequences} stop sequences. Given: {len(stop)}")
        top_n = int(top_n or 0)
        if top_n > self.max_top_n_tokens:
            raise _ValidationError(f"`top_n_tokens` must be >= 0 and <= {self.max_top_n_tokens}. Given: {top_n}")
        if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**64):
            raise _ValidationError("`seed` must be an unsigned 64-bit integer")
        n_input = len(self.engine.tokenize(prompt))
        if max_new_tokens is None:
            max_new_tokens = min(max(self.max_total_tokens - n_input, 1), 1024)
        if n_input + max_new_tokens > self.max_total_tokens:
            raise _ValidationError(
                f"`inputs` tokens + `max_new_tokens` must be <= {self.max_total_tokens}. Given: {n_input} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
            )
        if n_input > self.max_input_tokens:
            raise _ValidationError(f"`inputs` must have less than {self.max_input_tokens} tokens. Given: {n_input}")
        if self._slots is not None:
            self._slots.acquire()
        started = time.monotonic()  # the latency counts from the moment a slot is free, as a busy GPU would
        try:
            gen = self.engine.generate(prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop, top_n=top_n)
            rest = self.latency - (time.monotonic() - started)
            if rest > 0:
                time.sleep(rest)
        finally:
            if self._slots is not None:
                self._slots.release()
        if fault is not None and fault.kind == "empty":
            gen = Generation("", [], [] if top_n else None, "eos_token", gen.prompt_tokens)
        return gen

    def _generate(self, route: str, body: Any, fault: Fault | None) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
            raise _ValidationError("`inputs` must be a string")
        p = body.get("parameters") or {}
        if not isinstance(p, dict):
            raise _ValidationError("`parameters` must be an object")
        if body.get("stream"):
            raise _ValidationError("streaming is not served by this test server")
        sampling = p.get("do_sample") or p.get("temperature") is not None or p.get("top_p") is not None
        gen = self._run(
            body["inputs"],
            max_new_tokens=p.get("max_new_tokens"),
            temperature=(p.get("temperature") if p.get("temperature") is not None else 1.0) if sampling else None,
            top_p=p.get("top_p"),
            seed=p.get("seed"),
            stop=p.get("stop"),
            top_n=p.get("top_n_tokens"),
            fault=fault,
        )
        text = (body["inputs"] + gen.text) if p.get("return_full_text") else gen.text
        out: dict[str, Any] = {"generated_text": text}
        if p.get("details") or p.get("decoder_input_details"):
            prefill: list[dict[str, Any]] = []
            if p.get("decoder_input_details") and self.prefill_logprobs:
                try:
                    prefill = self.engine.prefill(body["inputs"], bool(body.get("add_special_tokens", True)))
                except NotImplementedError as exc:
                    raise _ValidationError(str(exc)) from exc
            details: dict[str, Any] = {
                "finish_reason": gen.finish_reason,
                "generated_tokens": len(gen.tokens),
                "seed": p.get("seed") if sampling else None,
                "prefill": prefill,
                "tokens": [{"id": i, "text": t, "logprob": lp, "special": False} for i, t, lp in gen.tokens],
            }
            if gen.top_tokens:
                details["top_tokens"] = [[{"id": i, "text": t, "logprob": lp, "special": False} for i, t, lp in step] for step in gen.top_tokens]
            out["details"] = details
        return 200, ([out] if route == "/" else out)

    def _openai_params(self, body: Any) -> dict[str, Any]:
        if body.get("stream"):
            raise _ValidationError("streaming is not served by this test server")
        temperature = body.get("temperature")
        greedy = temperature is not None and temperature == 0
        return {
            "max_new_tokens": body.get("max_tokens"),
            "temperature": None if greedy or temperature is None else temperature,
            "top_p": None if greedy else body.get("top_p"),
            "seed": body.get("seed"),
            "stop": [body["stop"]] if isinstance(body.get("stop"), str) else body.get("stop"),
        }

    def _chat(self, body: Any, fault: Fault | None) -> tuple[int, Any]:
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
        ):
            raise _ValidationError("`messages` must be a non-empty list of {role, content} objects")
        top_n = body.get("top_logprobs") if body.get("logprobs") else 0
        gen = self._run(self.engine.chat_prompt(messages), top_n=top_n, fault=fault, **self._openai_params(body))
        logprobs = None
        if body.get("logprobs"):
            logprobs = {
                "content": [
                    {"token": t, "logprob": lp, "top_logprobs": [{"token": a, "logprob": b} for _, a, b in (gen.top_tokens[k] if gen.top_tokens else [])]}
                    for k, (_, t, lp) in enumerate(gen.tokens)
                ]
            }
        choice = {"index": 0, "message": {"role": "assistant", "content": gen.text}, "logprobs": logprobs, "finish_reason": _openai_reason(gen)}
        return 200, self._openai_envelope("chat.completion", choice, gen)

    def _completions(self, body: Any, fault: Fault | None) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            raise _ValidationError("`prompt` must be a string")
        gen = self._run(body["prompt"], top_n=body.get("logprobs") or 0, fault=fault, **self._openai_params(body))
        choice = {"index": 0, "text": gen.text, "logprobs": None, "finish_reason": _openai_reason(gen)}
        return 200, self._openai_envelope("text_completion", choice, gen)

    def _openai_envelope(self, kind: str, choice: dict[str, Any], gen: Generation) -> dict[str, Any]:
        return {
            "object": kind,
            "id": "",
            "created": int(time.time()),
            "model": self.engine.model_id,
            "system_fingerprint": "3.3.6-hfevol-test",
            "choices": [choice],
            "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": len(gen.tokens), "total_tokens": gen.prompt_tokens + len(gen.tokens)},
        }


def _openai_reason(gen: Generation) -> str:
    return "length" if gen.finish_reason == "length" else "stop"


def _invalid(message: str) -> tuple[int, Any]:
    return 422, {"error": f"Input validation error: {message}", "error_type": "validation"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the default backlog of 5 overflows under bursts of new connections

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], OSError):  # a client that hung up (time-out, kill) is not an error here
            super().handle_error(request, client_address)


def _make_handler(app: TGITestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as every real server
        disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms per kept-alive request

        def setup(self) -> None:
            super().setup()
            with app._lock:
                app._connections.add(self.connection)

        def finish(self) -> None:
            with app._lock:
                app._connections.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log is the record
            pass

        def do_GET(self) -> None:
            started = time.time()
            status, payload = app.handle_get(self.path)
            app._append("GET", self.path, None, status, None, started, self.headers)
            self._send(status, payload)

        def do_POST(self) -> None:
            started = time.time()
            route = self.path
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, payload = app.bad_json(raw)
                app._append("POST", route, raw.decode(errors="replace"), status, None, started, self.headers)
                self._send(status, payload)
                return
            if route not in app.POST_ROUTES:
                app._append("POST", route, body, 404, None, started, self.headers)
                self._send(404, None)
                return
            if app.api_key is not None and (self.headers.get("authorization") or "").lower() != f"bearer {app.api_key}".lower():
                app._append("POST", route, body, 401, None, started, self.headers)
                self._send(401, None)
                return
            fault = app.faults.pick(route)
            status, write, fault = self._answer(route, body, fault)
            # Logged before the answer leaves, so that a client that has its answer always finds it in the log.
            app._append("POST", route, body, status, fault.label if fault is not None else None, started, self.headers)
            write()

        def _answer(self, route: str, body: Any, fault: Fault | None) -> tuple[int, Callable[[], None], Fault | None]:
            """The status to send (0: drop the connection), the function that sends it, and the fault applied."""
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.seconds)
            if fault is not None and fault.kind == "drop":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return 0, lambda: None, fault
            if fault is not None and fault.kind == "status":
                return fault.status, lambda: self._send(fault.status, fault.body, {"Retry-After": fault.retry_after} if fault.retry_after else {}), fault
            status, payload = app.handle_post(route, body, fault)
            if status != 200 and fault is not None and fault.kind in BODY_FAULTS:
                # a refused request (a prompt too long, say) generates nothing to spoil: the
                # fault waits for the next request, so a queued fault always lands on an answer
                app.faults.requeue(fault)
                fault = None
            if status == 200 and fault is not None and fault.kind == "malformed":
                return 200, lambda: self._send_raw(200, b'{"generated_text": "cut sh', "application/json"), fault
            if status == 200 and fault is not None and fault.kind == "truncated":
                return 200, lambda: self._send_truncated(payload), fault
            return status, lambda: self._send(status, payload), fault

        def _send_truncated(self, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) + 100))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            if payload is None:
                self._send_raw(status, b"", None, headers)
            elif isinstance(payload, str):
                self._send_raw(status, payload.encode(), "text/plain; charset=utf-8", headers)
            else:
                self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

        def _send_raw(self, status: int, data: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; print ``READY <url>`` once listening."""
    p = argparse.ArgumentParser(prog="python -m hfevol.testing.tgi_server", description=__doc__.split("\n\n")[0])
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


if __name__ == "__main__":
    raise SystemExit(main())
