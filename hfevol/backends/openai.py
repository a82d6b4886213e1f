"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI's OpenAI routes): build requests, parse answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError, EndpointError
from .base import GenerationRequest, GenerationResult, Route, top1_from_logprobs
from .chat import chat_call, chat_kwargs, parse_chat
from .endpoint import EndpointBackend, PromptScoring
from .transport import Endpoint, HttpCall, Transport


@dataclass
class OpenAIBackend(EndpointBackend):
    """Generate with one or more OpenAI-compatible servers.

    Routes:
        - ``"chat"`` (default): ``/v1/chat/completions``; the server applies the chat template.
        - ``"completions"``: ``/v1/completions`` with a raw prompt; the chat template is
          rendered here with ``tokenizer``.

    Args:
        extra_body: extra fields merged into every request body (for example vLLM's
            ``guided_json`` or ``repetition_penalty``); part of the cache key.

    The start-up check reads ``/v1/models``: the served id (or ``model``, which must be
    one of them) and, where the server says it (vLLM's ``root`` and ``max_model_len``), the
    path it was loaded from and its context length. The OpenAI API has no revision field,
    so ``revision`` is None.

    For IFD scoring, :meth:`atokenize` and :meth:`aprompt_logprobs` speak two vLLM
    extensions: ``/tokenize`` and ``prompt_logprobs``.

    See :class:`~hfevol.backends.endpoint.EndpointBackend` for the shared settings.
    """

    extra_body: dict[str, Any] | None = None

    kind = "openai"
    ROUTES: ClassVar[tuple[Route, ...]] = ("chat", "completions")
    CLIENT_TEMPLATE_ROUTES: ClassVar[tuple[Route, ...]] = ("completions",)
    SCORING: ClassVar[PromptScoring] = PromptScoring(
        server="vLLM",
        label="vllm prompt_logprobs",
        limit_field="max_model_len",
        reserved=1,
        sends_ids=True,
        tokenize_refusals=("not_found", "rejected"),
        hint="serve the model with vLLM, whose /tokenize and prompt_logprobs endpoint scoring reads; for TGI pass its URL or a TGIBackend (CLI: --endpoint-api tgi).",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.extra_body is not None and not isinstance(self.extra_body, dict):
            raise ConfigError(f"extra_body must be a dict, got {type(self.extra_body).__name__}")

    def _identity_extras(self) -> dict[str, Any]:
        return {"extra_body": self.extra_body} if self.extra_body else {}

    async def _probe(self, transport: Transport, endpoint: Endpoint) -> dict[str, Any]:
        return await transport.call(HttpCall("GET", "/v1/models"), self._parse_models, endpoint=endpoint)

    def _parse_models(self, listing: Any, url: str) -> dict[str, Any]:
        data = (listing.get("data") if isinstance(listing, dict) else None) or []
        ids = [m.get("id") for m in data or () if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if not ids:
            raise EndpointError(f"{url}/v1/models listed no model (is it an OpenAI-compatible server?)", cause="not_found", url=url)
        if self.model is not None and self.model not in ids:
            raise ConfigError(f"model {self.model!r} is not served at {url}; it serves {ids}")
        chosen = self.model or ids[0]
        entry = next(m for m in data if isinstance(m, dict) and m.get("id") == chosen)
        server = {k: entry[k] for k in ("owned_by", "root", "max_model_len") if k in entry}
        return {"model": chosen, "revision": None, "server": server}

    def build(self, request: GenerationRequest) -> HttpCall:
        if self.route == "chat":
            return chat_call(request, self._model_name(), top_n_tokens=self.top_n_tokens, extra=self.extra_body)
        payload = {"model": self._model_name(), "prompt": self._render(request), **chat_kwargs(request)}
        n = max(self.top_n_tokens, 1 if request.top1 else 0)
        if n:
            payload["logprobs"] = n
        payload.update(self.extra_body or {})
        return HttpCall("POST", "/v1/completions", payload)

    def parse(self, body: Any, request: GenerationRequest, *, url: str) -> GenerationResult:
        if self.route == "chat":
            return parse_chat(body, url=url, logprobs=bool(self.top_n_tokens), top1=request.top1)
        return _parse_completion(body, url=url, logprobs=bool(self.top_n_tokens), top1=request.top1)

    async def atokenize(self, text: str, *, special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` from vLLM's ``/tokenize`` (the served model's own tokenizer).

        With ``special_tokens`` (vLLM's default) these are the ids of ``text`` as a
        ``/v1/completions`` prompt, so they line up with :meth:`aprompt_logprobs`.

        Raises:
            EndpointError: the server has no ``/tokenize`` route (cause ``not_found``) or
                refuses vLLM's request (``rejected``), its answer has no list of ``tokens``,
                or the request failed after its retries.
        """
        transport = await self._transport()
        payload = {"model": self._model_name(), "prompt": text, "add_special_tokens": special_tokens}
        return await transport.call(HttpCall("POST", "/tokenize", payload), _parse_tokenize)

    async def aprompt_logprobs(self, prompt: str | Sequence[int]) -> list[tuple[int, str, float | None]]:
        """(token id, token text, log-probability) of each prompt token under the served model.

        vLLM's ``prompt_logprobs`` extension of ``/v1/completions`` (``prompt_logprobs: 1``,
        one greedy new token). Token ids are sent as the prompt, as they are, so the
        positions are exactly theirs; a text is first turned into ids by :meth:`atokenize`.
        The first token has no log-probability (None). At each position the answer's entry
        for the sent token is read; where there is none, the token the server scored there
        (the entry after the top-ranked one) is returned, so that comparing ids finds it.

        Raises:
            EndpointError: the answer has no ``prompt_logprobs`` (cause ``unsupported``: the
                server is not vLLM), its shape is not vLLM's, or the request failed after
                its retries.
        """
        ids = await self.atokenize(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        transport = await self._transport()
        payload = {"model": self._model_name(), "prompt": ids, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 1}
        return await transport.call(HttpCall("POST", "/v1/completions", payload), lambda body, url: _parse_prompt_logprobs(body, ids, url=url))


def _parse_tokenize(body: Any, url: str) -> list[int]:
    tokens = body.get("tokens") if isinstance(body, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        raise EndpointError(f"{url}/tokenize did not answer with vLLM's list of tokens", cause="malformed", url=url)
    return tokens


def _parse_completion(body: Any, *, url: str, logprobs: bool, top1: bool = False) -> GenerationResult:
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("text"), str):
        raise EndpointError(f"{url}/v1/completions answered without choices[0].text", cause="malformed", url=url)
    choice = choices[0]
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    values = tops = None
    lp = choice.get("logprobs")
    if logprobs and isinstance(lp, dict) and lp.get("token_logprobs"):
        values = tuple(float(v) for v in lp["token_logprobs"] if v is not None)
        tops = tuple(tuple((t, float(v)) for t, v in (step or {}).items()) for step in lp.get("top_logprobs") or ())
    best = None
    if top1 and isinstance(lp, dict) and lp.get("token_logprobs"):  # position by position, before any None is dropped
        steps = [tuple((t, v) for t, v in (step or {}).items()) for step in lp.get("top_logprobs") or ()]
        best = top1_from_logprobs(lp["token_logprobs"], steps)
    return GenerationResult(
        text=choice["text"],
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        logprobs=values,
        top_logprobs=tops or None,
        top1=best or None,
    )


def _parse_prompt_logprobs(body: Any, ids: list[int], *, url: str) -> list[tuple[int, str, float | None]]:
    """vLLM's ``choices[0].prompt_logprobs``: ``[None, {"<token id>": {"logprob", "rank", "decoded_token"}, ...}, ...]``."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise EndpointError(f"{url}/v1/completions answered without choices", cause="malformed", url=url)
    positions = choices[0].get("prompt_logprobs")
    if positions is None:
        raise EndpointError(
            f"{url} returned no prompt log-probabilities (no prompt_logprobs in its /v1/completions answer)",
            cause="unsupported",
            url=url,
            hint="prompt_logprobs is a vLLM extension: serve the model with vLLM, or with TGI started with --enable-prefill-logprobs (--endpoint-api tgi).",
        )
    malformed = EndpointError(f"{url}/v1/completions answered with prompt_logprobs in a shape that is not vLLM's", cause="malformed", url=url)
    if not isinstance(positions, list) or not positions or positions[0] is not None:
        raise malformed
    out: list[tuple[int, str, float | None]] = [(ids[0], "", None)]  # vLLM never scores the first token
    for k, entries in enumerate(positions[1:], start=1):
        if not isinstance(entries, dict) or not entries or not all(isinstance(e, dict) for e in entries.values()):
            raise malformed
        sent = str(ids[k]) if k < len(ids) else None
        key = sent if sent is not None and sent in entries else max(entries, key=lambda t: entries[t].get("rank") or 0)
        entry = entries[key]
        if not key.isdigit() or not isinstance(entry.get("logprob"), (int, float)):
            raise malformed
        out.append((int(key), str(entry.get("decoded_token") or ""), float(entry["logprob"])))
    return out
