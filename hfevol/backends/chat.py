"""The OpenAI-style chat-completions API, which TGI's Messages API and every OpenAI-compatible server speak: build, parse."""

from __future__ import annotations

from typing import Any

from ..errors import EndpointError
from .base import GenerationRequest, GenerationResult, top1_from_logprobs
from .transport import HttpCall


def chat_kwargs(request: GenerationRequest) -> dict[str, Any]:
    """Sampling settings of the OpenAI-style chat API (TGI's Messages API takes the same)."""
    p = request.params
    kwargs: dict[str, Any] = {"max_tokens": p.max_new_tokens, "temperature": 0.0 if p.greedy else p.temperature, "seed": request.seed}
    if not p.greedy and p.top_p < 1.0:
        kwargs["top_p"] = p.top_p
    if p.stop:
        kwargs["stop"] = list(p.stop)
    return kwargs


def chat_call(request: GenerationRequest, model: str, *, top_n_tokens: int = 0, extra: dict[str, Any] | None = None) -> HttpCall:
    """``POST /v1/chat/completions`` for ``request``: the body TGI's Messages API and OpenAI-compatible servers take.

    Fields whose value is None are left out (the server's default applies); ``extra``
    fields are merged in last (they may override the sampling settings).
    """
    body: dict[str, Any] = {"model": model, "messages": request.as_messages(), **chat_kwargs(request), "stream": False}
    n = max(top_n_tokens, 1 if request.top1 else 0)  # top-1 needs the likeliest alternative at each position
    if n:
        body.update(logprobs=True, top_logprobs=n)
    body.update(extra or {})
    return HttpCall("POST", "/v1/chat/completions", {k: v for k, v in body.items() if v is not None})


def parse_chat(body: Any, *, url: str, logprobs: bool, top1: bool = False) -> GenerationResult:
    """A :class:`GenerationResult` from a chat-completions answer; a body without a message is malformed.

    With ``top1``, :attr:`GenerationResult.top1` is read from ``choices[0].logprobs.content``
    (None when the server sent no log-probabilities)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise EndpointError(f"{url} answered without choices[0].message", cause="malformed", url=url)
    text = choice["message"].get("content")
    if not isinstance(text, str):
        raise EndpointError(f"{url} answered with a message whose content is {type(text).__name__}, not text", cause="malformed", url=url)
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    values = tops = best = None
    content = (choice.get("logprobs") or {}).get("content") if (logprobs or top1) and isinstance(choice.get("logprobs"), dict) else None
    if content:
        values = tuple(float(t["logprob"]) for t in content)
        tops = tuple(tuple((a["token"], float(a["logprob"])) for a in (t.get("top_logprobs") or ())) for t in content)
        best = top1_from_logprobs(values, tops) if top1 else None
        if not logprobs:
            values = tops = None
    return GenerationResult(
        text=text,
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        logprobs=values,
        top_logprobs=tops,
        top1=best or None,
    )
