"""Text Generation Inference (TGI) through ``huggingface_hub.AsyncInferenceClient``: build requests, parse answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError, EndpointError
from .base import GenerationRequest, GenerationResult, Route
from .endpoint import EndpointBackend, chat_kwargs, parse_chat
from .transport import Channel


@dataclass
class TGIBackend(EndpointBackend):
    """Generate with one or more TGI servers.

    Routes:
        - ``"chat"`` (default): the Messages API, ``/v1/chat/completions``; the server
          applies the model's chat template.
        - ``"generate"``: TGI's native ``/generate`` (``text_generation`` with
          ``details=True``, ``seed``, ``stop``, ``top_n_tokens`` and ``grammar``); the chat
          template is rendered here with ``tokenizer``.

    Args:
        grammar: TGI grammar, ``{"type": "json", "value": <JSON schema>}`` or
            ``{"type": "regex", "value": <pattern>}``, applied to every request.

    The start-up check reads ``/info`` (model id, ``model_sha``, ``max_concurrent_requests``)
    and sends one ``/tokenize`` request: TGI protects the generation routes with its API
    key but not ``/info``, so this is what finds a bad token before any work starts.

    See :class:`~hfevol.backends.endpoint.EndpointBackend` for the shared settings.
    """

    grammar: dict[str, Any] | None = None

    kind = "tgi"
    ROUTES: ClassVar[tuple[Route, ...]] = ("chat", "generate")
    CLIENT_TEMPLATE_ROUTES: ClassVar[tuple[Route, ...]] = ("generate",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grammar is not None:
            if not (isinstance(self.grammar, dict) and self.grammar.get("type") in ("json", "regex") and "value" in self.grammar):
                raise ConfigError(f"grammar={self.grammar!r} must be {{'type': 'json' | 'regex', 'value': ...}}")

    def _identity_extras(self) -> dict[str, Any]:
        return {"grammar": self.grammar} if self.grammar is not None else {}

    async def _probe(self, channel: Channel) -> dict[str, Any]:
        info = await channel.get_json("/info")
        if not isinstance(info, dict) or not isinstance(info.get("model_id"), str):
            raise EndpointError(
                f"{channel.url}/info did not describe a model (is it a TGI server?)",
                cause="not_found",
                url=channel.url,
                hint="for vLLM, SGLang, llama.cpp and other OpenAI-compatible servers use the openai API kind.",
            )
        await _check_token(channel)
        server = {k: info.get(k) for k in ("version", "sha", "max_input_tokens", "max_total_tokens", "max_concurrent_requests") if k in info}
        return {"model": info["model_id"], "revision": info.get("model_sha"), "max_concurrent_requests": info.get("max_concurrent_requests"), "server": server}

    async def _send(self, channel: Channel, request: GenerationRequest) -> GenerationResult:
        if self.route == "chat":
            kwargs = chat_kwargs(request)
            if self.top_n_tokens:
                kwargs.update(logprobs=True, top_logprobs=self.top_n_tokens)
            if self.grammar is not None:
                kwargs["response_format"] = self.grammar
            out = await channel.hf.chat_completion(request.as_messages(), model=self._model_name(), **kwargs)
            return parse_chat(out, url=channel.url, logprobs=bool(self.top_n_tokens))
        p = request.params
        out = await channel.hf.text_generation(
            self._render(request),
            model=channel.url + "/generate",
            details=True,
            max_new_tokens=p.max_new_tokens,
            do_sample=not p.greedy,
            temperature=None if p.greedy else p.temperature,
            top_p=p.top_p if not p.greedy and p.top_p < 1.0 else None,
            seed=request.seed,
            stop=list(p.stop) or None,
            top_n_tokens=self.top_n_tokens or None,
            grammar=self.grammar,
            return_full_text=False,
        )
        return _parse_generate(out, request, url=channel.url, logprobs=bool(self.top_n_tokens))

    async def aprompt_logprobs(self, text: str) -> list[tuple[int, str, float | None]]:
        """(token id, token text, log-probability) of each token of ``text`` under the served model.

        TGI's prefill details (``decoder_input_details=True``); the first token has no
        log-probability (None). The text is sent as is: render any chat template first.

        Raises:
            EndpointError: the server returned no prefill log-probs (TGI 3 needs
                ``--enable-prefill-logprobs``; without it the list is silently empty), or
                the request failed after its retries.
        """
        transport = await self._transport()

        async def send(channel: Channel) -> list[tuple[int, str, float | None]]:
            out = await channel.hf.text_generation(text, model=channel.url + "/generate", details=True, decoder_input_details=True, max_new_tokens=1)
            prefill = getattr(getattr(out, "details", None), "prefill", None)
            if not prefill:
                raise EndpointError(
                    f"{channel.url} returned no prompt log-probabilities",
                    cause="unsupported",
                    url=channel.url,
                    hint="start TGI with --enable-prefill-logprobs (TGI 3 answers with an empty list without it).",
                )
            return [(t.id, t.text, t.logprob) for t in prefill]

        return await transport.call(send)

    async def atokenize(self, text: str, *, special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` from the server's ``/tokenize`` (the served model's own tokenizer).

        With ``special_tokens`` (TGI's default) the ids are those ``/generate`` reads for
        the same text, so they line up with :meth:`aprompt_logprobs`.

        Raises:
            EndpointError: the server has no ``/tokenize`` route (cause ``not_found``), its
                answer is not a list of tokens, or the request failed after its retries.
        """
        transport = await self._transport()
        payload: dict[str, Any] = {"inputs": text} if special_tokens else {"inputs": text, "add_special_tokens": False}

        async def send(channel: Channel) -> list[int]:
            out = await channel.post_json("/tokenize", payload)
            if not isinstance(out, list) or not all(isinstance(t, dict) and isinstance(t.get("id"), int) for t in out):
                raise EndpointError(f"{channel.url}/tokenize did not answer with a list of tokens", cause="malformed", url=channel.url)
            return [t["id"] for t in out]

        return await transport.call(send)


async def _check_token(channel: Channel) -> None:
    """Send the cheapest protected request; a 404 means the server has no ``/tokenize`` (fine)."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        await channel.post_json("/tokenize", {"inputs": "hfevol"})
    except HfHubHTTPError as exc:
        if exc.response is None or exc.response.status_code != 404:
            raise


def _parse_generate(out: Any, request: GenerationRequest, *, url: str, logprobs: bool) -> GenerationResult:
    text = getattr(out, "generated_text", None)
    details = getattr(out, "details", None)
    if not isinstance(text, str) or details is None:
        raise EndpointError(f"{url}/generate answered without generated_text and details", cause="malformed", url=url)
    reason = details.finish_reason
    if reason == "stop_sequence":  # TGI keeps the stop sequence at the end of the text; the local backend does not
        for stop in request.params.stop:
            if text.endswith(stop):
                text = text[: -len(stop)]
                break
    values = tops = None
    if logprobs and details.tokens:
        values = tuple(float(t.logprob) for t in details.tokens)
        if details.top_tokens:
            tops = tuple(tuple(_text_and_logprob(a) for a in step) for step in details.top_tokens)
    return GenerationResult(
        text=text,
        finish_reason="length" if reason == "length" else "stop",
        completion_tokens=details.generated_tokens,
        logprobs=values,
        top_logprobs=tops,
    )


def _text_and_logprob(token: Any) -> tuple[str, float]:
    # huggingface_hub parses the outer list of ``top_tokens`` into objects but leaves the inner items as dicts
    if isinstance(token, dict):
        return token["text"], float(token["logprob"])
    return token.text, float(token.logprob)
