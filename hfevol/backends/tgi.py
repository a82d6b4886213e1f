"""Text Generation Inference (TGI): build requests, parse answers (the transport sends them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError, EndpointError
from .base import GenerationRequest, GenerationResult, Route, top1_from_logprobs
from .chat import chat_call, parse_chat
from .endpoint import EndpointBackend, PromptScoring
from .transport import Endpoint, HttpCall, Transport


@dataclass
class TGIBackend(EndpointBackend):
    """Generate with one or more TGI servers.

    Routes:
        - ``"chat"`` (default): the Messages API, ``/v1/chat/completions``; the server
          applies the model's chat template.
        - ``"generate"``: TGI's native ``/generate`` (``details=True``, ``seed``, ``stop``,
          ``top_n_tokens`` and ``grammar``); the chat template is rendered here with ``tokenizer``.

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
    SCORING: ClassVar[PromptScoring] = PromptScoring(
        server="TGI",
        label="tgi prefill (decoder_input_details)",
        limit_field="max_input_tokens",
        reserved=0,
        sends_ids=False,
        tokenize_refusals=("not_found",),
        hint="serve the model with Text Generation Inference (TGI).",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grammar is not None and not (isinstance(self.grammar, dict) and self.grammar.get("type") in ("json", "regex") and "value" in self.grammar):
            raise ConfigError(f"grammar={self.grammar!r} must be {{'type': 'json' | 'regex', 'value': ...}}")

    def _identity_extras(self) -> dict[str, Any]:
        return {"grammar": self.grammar} if self.grammar is not None else {}

    async def _probe(self, transport: Transport, endpoint: Endpoint) -> dict[str, Any]:
        info = await transport.call(HttpCall("GET", "/info"), _info, endpoint=endpoint)
        try:  # TGI protects the generation routes with its API key but not /info
            await transport.call(HttpCall("POST", "/tokenize", {"inputs": "hfevol"}), lambda body, url: None, endpoint=endpoint)
        except EndpointError as exc:
            if exc.cause != "not_found":  # a server without /tokenize is fine here
                raise
        server = {k: info.get(k) for k in ("version", "sha", "max_input_tokens", "max_total_tokens", "max_concurrent_requests") if k in info}
        return {"model": info["model_id"], "revision": info.get("model_sha"), "max_concurrent_requests": info.get("max_concurrent_requests"), "server": server}

    def build(self, request: GenerationRequest) -> HttpCall:
        if self.route == "chat":
            extra = {"response_format": self.grammar} if self.grammar is not None else None
            return chat_call(request, self._model_name(), top_n_tokens=self.top_n_tokens, extra=extra)
        p = request.params
        parameters = {
            "details": True,
            "do_sample": not p.greedy,
            "grammar": self.grammar,
            "max_new_tokens": p.max_new_tokens,
            "return_full_text": False,
            "seed": request.seed,
            "stop": list(p.stop) or None,
            "temperature": None if p.greedy else p.temperature,
            # greedy: the emitted token is the top-1 (its logprob is in details); sampled: ask for the top one
            "top_n_tokens": max(self.top_n_tokens, 1 if request.top1 and not p.greedy else 0) or None,
            "top_p": p.top_p if not p.greedy and p.top_p < 1.0 else None,
        }
        return _generate_call(self._render(request), parameters)

    def parse(self, body: Any, request: GenerationRequest, *, url: str) -> GenerationResult:
        if self.route == "chat":
            return parse_chat(body, url=url, logprobs=bool(self.top_n_tokens), top1=request.top1)
        return _parse_generate(body, request, url=url, logprobs=bool(self.top_n_tokens))

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
        call = _generate_call(text, {"decoder_input_details": True, "details": True, "max_new_tokens": 1})
        return await transport.call(call, _parse_prefill)

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
        return await transport.call(HttpCall("POST", "/tokenize", payload), _parse_tokenize)


def _generate_call(prompt: str, parameters: dict[str, Any]) -> HttpCall:
    """``POST /generate``; parameters whose value is None are left out (TGI's default applies)."""
    return HttpCall("POST", "/generate", {"inputs": prompt, "parameters": {k: v for k, v in parameters.items() if v is not None}})


def _info(body: Any, url: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("model_id"), str):
        raise EndpointError(
            f"{url}/info did not describe a model (is it a TGI server?)",
            cause="not_found",
            url=url,
            hint="for vLLM, SGLang, llama.cpp and other OpenAI-compatible servers use the openai API kind.",
        )
    return body


def _parse_tokenize(body: Any, url: str) -> list[int]:
    if not isinstance(body, list) or not all(isinstance(t, dict) and isinstance(t.get("id"), int) for t in body):
        raise EndpointError(f"{url}/tokenize did not answer with a list of tokens", cause="malformed", url=url)
    return [t["id"] for t in body]


def _details(body: Any, url: str) -> tuple[str, dict[str, Any]]:
    """``generated_text`` and ``details`` of a ``/generate`` answer (TGI answers one object; a list of one is read too)."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    text = body.get("generated_text") if isinstance(body, dict) else None
    details = body.get("details") if isinstance(body, dict) else None
    if not isinstance(text, str) or not isinstance(details, dict):
        raise EndpointError(f"{url}/generate answered without generated_text and details", cause="malformed", url=url)
    return text, details


def _parse_prefill(body: Any, url: str) -> list[tuple[int, str, float | None]]:
    _, details = _details(body, url)
    prefill = details.get("prefill")
    if not prefill:
        raise EndpointError(
            f"{url} returned no prompt log-probabilities",
            cause="unsupported",
            url=url,
            hint="start TGI with --enable-prefill-logprobs (TGI 3 answers with an empty list without it).",
        )
    if not isinstance(prefill, list) or not all(isinstance(t, dict) and isinstance(t.get("id"), int) for t in prefill):
        raise EndpointError(f"{url}/generate answered with prefill details in a shape that is not TGI's", cause="malformed", url=url)
    return [(t["id"], str(t.get("text") or ""), t.get("logprob")) for t in prefill]


def _parse_generate(body: Any, request: GenerationRequest, *, url: str, logprobs: bool) -> GenerationResult:
    text, details = _details(body, url)
    reason = details.get("finish_reason")
    if reason == "stop_sequence":  # TGI keeps the stop sequence at the end of the text; the local backend does not
        for stop in request.params.stop:
            if text.endswith(stop):
                text = text[: -len(stop)]
                break
    values = tops = None
    if logprobs and details.get("tokens"):
        values = tuple(float(t["logprob"]) for t in details["tokens"])
        if details.get("top_tokens"):
            tops = tuple(tuple((a["text"], float(a["logprob"])) for a in step) for step in details["top_tokens"])
    best = _generate_top1(details) if request.top1 else None
    return GenerationResult(
        text=text,
        finish_reason="length" if reason == "length" else "stop",
        completion_tokens=details.get("generated_tokens"),
        logprobs=values,
        top_logprobs=tops,
        top1=best or None,
    )


def _generate_top1(details: dict[str, Any]) -> tuple[float, ...]:
    """Top-1 probability of each generated token of ``details``; special tokens (the end-of-sequence step) are left out."""
    tokens = details.get("tokens") or []
    steps = details.get("top_tokens") or []
    kept = [t for t, token in enumerate(tokens) if isinstance(token, dict) and not token.get("special")]
    values = [tokens[t].get("logprob") for t in kept]
    tops = [[(a.get("text"), a.get("logprob")) for a in steps[t]] if t < len(steps) else [] for t in kept]
    return top1_from_logprobs(values, tops)
