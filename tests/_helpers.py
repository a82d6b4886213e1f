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


@dataclass
class KeywordBackend(Backend):
    """A model whose reply depends on the instruction (the prompt's last line).

    ``REFUSE`` in it gives a refusal, ``FAIL`` a backend error, ``LONG`` a reply cut at
    ``max_new_tokens``; anything else a plausible harder instruction that names the round's
    seed, so that every reply is distinct.
    """

    model: str = "keyword-1"

    kind = "keyword"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.kind, "model": self.model}

    @property
    def calls(self) -> list[GenerationRequest]:
        if getattr(self, "_calls", None) is None:
            self._calls = []
        return self._calls

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.calls.extend(requests)
        out = []
        for r in requests:
            last = r.messages[-1][1].strip().splitlines()[-1]
            if "REFUSE" in last:
                out.append(GenerationResult(text="I'm sorry, but I cannot help with that request.", finish_reason="stop"))
            elif "FAIL" in last:
                out.append(GenerationResult.failure("backend exploded"))
            elif "LONG" in last:
                out.append(GenerationResult(text=f"Please explain in great detail: {last} and more", finish_reason="length"))
            else:
                out.append(GenerationResult(text=f"Please explain, step by step and with an example ({r.seed % 1000}): {last}", finish_reason="stop"))
        return out
