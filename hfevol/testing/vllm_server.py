"""A strict local stand-in for a vLLM server, on 127.0.0.1: the routes that scoring and generation use.

vLLM needs a GPU and cannot run here, so tests drive the real clients against this server.
It is the TGI test server (:mod:`hfevol.testing.tgi_server`: engines, faults, latency,
request log) with vLLM's shapes instead of TGI's:

- ``POST /tokenize``: ``{"model", "prompt", "add_special_tokens"}`` in,
  ``{"count", "max_model_len", "tokens", "token_strs"}`` out;
- ``GET /v1/models``: each model card has ``root`` and ``max_model_len``;
- ``POST /v1/completions``: the prompt is a string or a list of token ids (taken as they
  are, no special tokens added), and vLLM's ``prompt_logprobs: k`` extension answers
  ``choices[0].prompt_logprobs``: None for the first prompt token, then for each later
  position a map from token id (a string) to ``{"logprob", "rank", "decoded_token"}``
  holding the ``k`` likeliest tokens and the prompt token itself, computed in float32 by
  the model. ``prompt_logprobs=False`` makes it answer like an OpenAI-compatible server
  without that extension (the field is null);
- ``POST /v1/chat/completions`` as the TGI server serves it;
- the context, as vLLM 0.32 checks it (both routes): ``max_tokens`` above ``max_model_len``,
  a prompt longer than ``max_model_len``, or one that leaves no room for a token is refused
  (400); otherwise ``max_tokens`` is cut to what the context leaves, without an error;
- errors in vLLM's JSON shape, ``{"error": {"message", "type", "param", "code"}}``: 400 for a
  request it refuses (bad types, the context rules above, malformed JSON), 404 for a model
  it does not serve. vLLM has no ``/info`` and no ``/generate``: 404.

Run it alone with ``python -m hfevol.testing.tgi_server --flavour vllm``.
"""

from __future__ import annotations

import time
from typing import Any

from .engines import Engine
from .faults import Fault
from .tgi_server import TGITestServer, _openai_reason
from .validation import ValidationError, openai_params

MAX_LOGPROBS = 20
"""vLLM's default ``--max-logprobs``: the most ``logprobs`` or ``prompt_logprobs`` a request may ask for."""

VERSION = "0.11.0-hfevol-test"


class VLLMTestServer(TGITestServer):
    """A vLLM-compatible HTTP server on 127.0.0.1 (see the module docstring).

    Args:
        max_model_len: the context length it announces and enforces (prompt + ``max_tokens``).
        prompt_logprobs: answer vLLM's ``prompt_logprobs`` (default); False: leave it null,
            as OpenAI-compatible servers without vLLM's extension do.

    The other arguments are those of :class:`~hfevol.testing.TGITestServer`.
    """

    POST_ROUTES = frozenset({"/tokenize", "/v1/completions", "/v1/chat/completions"})

    def __init__(self, engine: Engine | None = None, *, max_model_len: int = 8192, prompt_logprobs: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("max_top_n_tokens", MAX_LOGPROBS)
        super().__init__(engine, max_input_tokens=max_model_len, max_total_tokens=max_model_len, **kwargs)
        self.max_model_len = max_model_len
        self.prompt_logprobs = prompt_logprobs

    def model_card(self) -> dict[str, Any]:
        model = self.engine.model_id
        return {
            "id": model,
            "object": "model",
            "created": 0,
            "owned_by": "vllm",
            "root": model,
            "parent": None,
            "max_model_len": self.max_model_len,
            "permission": [],
        }

    def handle_get(self, route: str) -> tuple[int, Any]:
        if route == "/health":
            return 200, None
        if route == "/version":
            return 200, {"version": VERSION}
        if route == "/v1/models":
            return 200, {"object": "list", "data": [self.model_card()]}
        if route == "/metrics":
            return super().handle_get(route)
        return 404, {"detail": "Not Found"}

    def bad_json(self, raw: bytes) -> tuple[int, Any]:
        return _error(400, f"the request body is not valid JSON: {raw[:60]!r}")

    def handle_post(self, route: str, body: Any, fault: Fault | None) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != self.engine.model_id:
            return _error(404, f"The model `{model}` does not exist.", kind="NotFoundError", param="model")
        try:
            if route == "/tokenize":
                return 200, self._tokenize(body)
            if route == "/v1/completions":
                return 200, self._completion(body, fault)
            return self._chat(body, fault)
        except ValidationError as exc:
            message, param = (*exc.args, None)[:2]  # (message, parameter): the parameter is vLLM's ``param``
            return _error(400, message, param=param)

    def _tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        if "messages" in body:
            raise ValidationError("this test server tokenizes a `prompt` only, not `messages`", "messages")
        prompt, special = body.get("prompt"), body.get("add_special_tokens", True)
        if not isinstance(prompt, str):
            raise ValidationError("`prompt` must be a string", "prompt")
        if not isinstance(special, bool):
            raise ValidationError("`add_special_tokens` must be a boolean", "add_special_tokens")
        ids = [t["id"] for t in self.engine.tokenize(prompt, special)]
        return {"count": len(ids), "max_model_len": self.max_model_len, "tokens": ids, "token_strs": None}

    def _completion(self, body: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        prompt = body.get("prompt")
        if isinstance(prompt, str) and prompt:
            special = body.get("add_special_tokens", True)
            ids = [t["id"] for t in self.engine.tokenize(prompt, special is not False)]
            text = prompt
        elif isinstance(prompt, list) and prompt and all(_is_int(t) and t >= 0 for t in prompt):
            ids, text = list(prompt), self.engine.decode(prompt)
        else:
            raise ValidationError(
                "`prompt` must be a non-empty string or a non-empty list of token ids (integers >= 0); this server takes one prompt per request", "prompt"
            )
        unknown = next((t for t in ids if t >= self.engine.vocab_size), None)
        if unknown is not None:
            raise ValidationError(f"token id {unknown} is outside the vocabulary of {self.engine.vocab_size} tokens", "prompt")
        max_tokens = 16 if body.get("max_tokens") is None else body["max_tokens"]
        if not _is_int(max_tokens) or max_tokens < 1:
            raise ValidationError("`max_tokens` must be an integer >= 1", "max_tokens")
        k = body.get("prompt_logprobs")
        if k is not None and not (_is_int(k) and 0 <= k <= MAX_LOGPROBS):
            raise ValidationError(f"`prompt_logprobs` must be an integer from 0 to {MAX_LOGPROBS} (this server's --max-logprobs)", "prompt_logprobs")
        if body.get("stream"):
            raise ValidationError("streaming is not served by this test server", "stream")
        max_tokens = self._fit(len(ids), max_tokens)
        n_logprobs = body.get("logprobs") or 0
        if not (_is_int(n_logprobs) and 0 <= n_logprobs <= MAX_LOGPROBS):
            raise ValidationError(f"`logprobs` must be an integer from 0 to {MAX_LOGPROBS} (this server's --max-logprobs)", "logprobs")
        params = {**openai_params(body), "max_new_tokens": max_tokens}
        gen = self._run(text, top_n=n_logprobs, fault=fault, **params)
        prompt_logprobs = None
        if k is not None and self.prompt_logprobs:
            try:
                positions = self.engine.prompt_logprobs(ids, k)
            except NotImplementedError as exc:
                raise ValidationError(str(exc), "prompt_logprobs") from exc
            prompt_logprobs = [None if p is None else {str(t): entry for t, entry in p.items()} for p in positions]
        choice = {
            "index": 0,
            "text": gen.text,
            "logprobs": _completion_logprobs(gen) if n_logprobs else None,
            "finish_reason": _openai_reason(gen),
            "stop_reason": None,
            "prompt_logprobs": prompt_logprobs,
        }
        out = self._openai_envelope("text_completion", choice, gen)
        generated = len(gen.tokens)
        out.update(
            id=f"cmpl-{time.monotonic_ns():x}",
            system_fingerprint=None,
            usage={"prompt_tokens": len(ids), "completion_tokens": generated, "total_tokens": len(ids) + generated},
        )
        return out

    def _run(self, prompt: str, *, max_new_tokens: int | None, **kwargs: Any) -> Any:
        if isinstance(max_new_tokens, int) and prompt:  # vLLM's context rules before the TGI server's checks
            max_new_tokens = self._fit(len(self.engine.tokenize(prompt)), max_new_tokens)
        return super()._run(prompt, max_new_tokens=max_new_tokens, **kwargs)

    def _fit(self, n_prompt: int, max_tokens: int) -> int:
        """``max_tokens`` cut to the context, or vLLM's refusal (the words of vLLM 0.32's messages)."""
        limit = self.max_model_len
        if max_tokens > limit:
            raise ValidationError(f"max_tokens={max_tokens} cannot be greater than max_model_len={limit}. Please request fewer output tokens.", "max_tokens")
        if n_prompt > limit:
            raise ValidationError(
                f"This model's maximum context length is {limit} tokens. However, your prompt contains at least {n_prompt} input tokens, "
                "which exceeds this limit even without any output tokens. Please reduce the length of the input prompt.",
                "input_tokens",
            )
        fitted = min(max_tokens, limit - n_prompt)
        if fitted < 1:
            raise ValidationError(f"max_tokens must be at least 1, got {fitted}.", "max_tokens")
        return fitted


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _completion_logprobs(gen: Any) -> dict[str, Any]:
    """The legacy completions ``logprobs`` object of the generated tokens."""
    offsets, at = [], 0
    for _, text, _ in gen.tokens:
        offsets.append(at)
        at += len(text)
    return {
        "text_offset": offsets,
        "token_logprobs": [lp for _, _, lp in gen.tokens],
        "tokens": [text for _, text, _ in gen.tokens],
        "top_logprobs": [{t: lp for _, t, lp in step} for step in gen.top_tokens] if gen.top_tokens else None,
    }


def _error(status: int, message: str, *, kind: str = "BadRequestError", param: str | None = None) -> tuple[int, Any]:
    return status, {"error": {"message": message, "type": kind, "param": param, "code": status}}
