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

import socket
import threading
import time
from typing import Any

from .engines import EchoEngine, Engine, Generation
from .faults import Fault, FaultPlan
from .http_handler import ThreadedServer, make_handler
from .request_log import LoggedRequest
from .validation import ValidationError, check_length, check_sampling, invalid, openai_params

__all__ = ["POST_ROUTES", "LoggedRequest", "TGITestServer", "main"]

POST_ROUTES = frozenset({"/", "/generate", "/v1/chat/completions", "/v1/completions", "/tokenize"})
"""TGI's routes that take a body (streaming is not served); like TGI's ``--api-key``, the key guards exactly these."""


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
        self._httpd = ThreadedServer(("127.0.0.1", port), make_handler(self))
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
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
                return invalid("`inputs` must be a string")
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
        except ValidationError as exc:
            return invalid(str(exc))
        finally:
            with self._lock:
                self._in_system -= 1

    def _run(
        self, prompt: str, *, max_new_tokens: int | None, temperature: float | None, top_p: float | None, seed: Any, stop: Any, top_n: Any, fault: Fault | None
    ) -> Generation:
        stop, top_n = check_sampling(
            prompt=prompt,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            stop=stop,
            top_n=top_n,
            seed=seed,
            max_stop_sequences=self.max_stop_sequences,
            max_top_n_tokens=self.max_top_n_tokens,
        )
        n_input = len(self.engine.tokenize(prompt))
        max_new_tokens = check_length(n_input, max_new_tokens, max_input_tokens=self.max_input_tokens, max_total_tokens=self.max_total_tokens)
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
            raise ValidationError("`inputs` must be a string")
        p = body.get("parameters") or {}
        if not isinstance(p, dict):
            raise ValidationError("`parameters` must be an object")
        if body.get("stream"):
            raise ValidationError("streaming is not served by this test server")
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
                    raise ValidationError(str(exc)) from exc
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

    def _chat(self, body: Any, fault: Fault | None) -> tuple[int, Any]:
        messages = body.get("messages") if isinstance(body, dict) else None
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages)
        ):
            raise ValidationError("`messages` must be a non-empty list of {role, content} objects")
        top_n = body.get("top_logprobs") if body.get("logprobs") else 0
        gen = self._run(self.engine.chat_prompt(messages), top_n=top_n, fault=fault, **openai_params(body))
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
            raise ValidationError("`prompt` must be a string")
        gen = self._run(body["prompt"], top_n=body.get("logprobs") or 0, fault=fault, **openai_params(body))
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


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; print ``READY <url>`` once listening (see :mod:`hfevol.testing.cli`)."""
    from .cli import main as serve

    return serve(argv)


if __name__ == "__main__":
    raise SystemExit(main())
