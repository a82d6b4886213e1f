"""Test doubles that stand in for a *model*, never for a protocol client."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hfevol.backends import Backend, GenerationRequest, GenerationResult


@dataclass
class ScriptedBackend(Backend):
    """Answers every request with ``reply`` (``{prompt}`` and ``{seed}`` are filled in).

    It keeps an unpicklable lock and a call log as runtime state, like a real backend
    keeps a model, to prove that runtime state stays out of pickles and fingerprints.
    """

    reply: str = "Evolved: {last_line} (seed {seed})"
    finish_reason: str = "stop"

    kind = "scripted"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.kind, "reply": self.reply}

    @property
    def calls(self) -> list[GenerationRequest]:
        if getattr(self, "_calls", None) is None:
            self._calls: list[GenerationRequest] = []
            self._lock = threading.Lock()
        return self._calls

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.calls.extend(requests)
        out = []
        for r in requests:
            last_line = r.messages[-1][1].strip().splitlines()[-1]
            out.append(GenerationResult(text=self.reply.format(last_line=last_line, seed=r.seed), finish_reason=self.finish_reason))
        return out
