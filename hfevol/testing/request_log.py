"""What the test servers record of each request, so that tests can prove what was (not) sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


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
    def prompt_key(self) -> tuple[str | tuple[Any, ...] | None, Any] | None:
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
