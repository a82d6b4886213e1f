"""The HTTP side of the test servers: the threaded server, and the handler that reads each
request, applies its fault on the wire (delays, drops, malformed and truncated bodies), logs
it and sends the answer. What to answer is the server object's business (``handle_get``,
``handle_post``, ``bad_json``)."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .faults import BODY_FAULTS, Fault

if TYPE_CHECKING:
    from .tgi_server import TGITestServer


class ThreadedServer(ThreadingHTTPServer):
    """One thread per connection, a deep backlog, and quiet about clients that hang up."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the default backlog of 5 overflows under bursts of new connections

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], OSError):  # a client that hung up (time-out, kill) is not an error here
            super().handle_error(request, client_address)


def make_handler(app: "TGITestServer") -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``app``, the server object that decides the answers."""

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
