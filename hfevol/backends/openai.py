"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI's OpenAI routes): build requests, parse answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError, EndpointError
from .base import GenerationRequest, GenerationResult
from .endpoint import EndpointBackend, chat_kwargs, parse_chat
from .transport import Channel


@dataclass
class OpenAIBackend(EndpointBackend):
    """Generate with one or more OpenAI-compatible servers.

    Routes:
        - ``"chat"`` (default): ``/v1/chat/completions`` through
          ``huggingface_hub.AsyncInferenceClient(base_url=...)``; the server applies the
          chat template.
        - ``"completions"``: ``/v1/completions`` with a raw prompt; the chat template is
          rendered here with ``tokenizer``. huggingface_hub has no client method for this
          route, so the transport posts the JSON itself.

    Args:
        extra_body: extra fields merged into every request body (for example vLLM's
            ``guided_json`` or ``repetition_penalty``); part of the cache key.

    The start-up check reads ``/v1/models``: the served id (or ``model``, which must be
    one of them) and, where the server says it (vLLM's ``root``), the path it was loaded
    from. The OpenAI API has no revision field, so ``revision`` is None.

    See :class:`~hfevol.backends.endpoint.EndpointBackend` for the shared settings.
    """

    extra_body: dict[str, Any] | None = None

    kind = "openai"
    ROUTES: ClassVar[tuple[str, ...]] = ("chat", "completions")
    CLIENT_TEMPLATE_ROUTES: ClassVar[tuple[str, ...]] = ("completions",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.extra_body is not None and not isinstance(self.extra_body, dict):
            raise ConfigError(f"extra_body must be a dict, got {type(self.extra_body).__name__}")

    def _identity_extras(self) -> dict[str, Any]:
        return {"extra_body": self.extra_body} if self.extra_body else {}

    async def _probe(self, channel: Channel) -> dict[str, Any]:
        listing = await channel.get_json("/v1/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        ids = [m.get("id") for m in data or () if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if not ids:
            raise EndpointError(f"{channel.url}/v1/models listed no model (is it an OpenAI-compatible server?)", cause="not_found", url=channel.url)
        if self.model is not None and self.model not in ids:
            raise ConfigError(f"model {self.model!r} is not served at {channel.url}; it serves {ids}")
        chosen = self.model or ids[0]
        entry = next(m for m in data if m.get("id") == chosen)
        server = {k: entry[k] for k in ("owned_by", "root", "max_model_len") if k in entry}
        return {"model": chosen, "revision": None, "server": server}

    async def _send(self, channel: Channel, request: GenerationRequest) -> GenerationResult:
        if self.route == "chat":
            kwargs = chat_kwargs(request)
            if self.top_n_tokens:
                kwargs.update(logprobs=True, top_logprobs=self.top_n_tokens)
            out = await channel.hf.chat_completion(request.as_messages(), model=self._model_name(), extra_body=self.extra_body, **kwargs)
            return parse_chat(out, url=channel.url, logprobs=bool(self.top_n_tokens))
        payload = {"model": self._model_name(), "prompt": self._render(request), **chat_kwargs(request)}
        if self.top_n_tokens:
            payload["logprobs"] = self.top_n_tokens
        payload.update(self.extra_body or {})
        return _parse_completion(await channel.post_json("/v1/completions", payload), url=channel.url, logprobs=bool(self.top_n_tokens))


def _parse_completion(body: Any, *, url: str, logprobs: bool) -> GenerationResult:
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
    return GenerationResult(
        text=choice["text"],
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        logprobs=values,
        top_logprobs=tops or None,
    )
