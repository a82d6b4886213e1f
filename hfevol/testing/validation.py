"""Request checks of the TGI test server: TGI's limits and its validation messages, word for word."""

from __future__ import annotations

from typing import Any


class ValidationError(Exception):
    """A request the server refuses: ``args`` are the message and, for vLLM's ``param``, the parameter."""


def invalid(message: str) -> tuple[int, Any]:
    """TGI's answer to a refused request: 422 with its ``validation`` error body."""
    return 422, {"error": f"Input validation error: {message}", "error_type": "validation"}


def check_sampling(
    *,
    prompt: str,
    temperature: float | None,
    top_p: float | None,
    max_new_tokens: int | None,
    stop: Any,
    top_n: Any,
    seed: Any,
    max_stop_sequences: int,
    max_top_n_tokens: int,
) -> tuple[list[str], int]:
    """Check a generation's settings as TGI does, before any token is counted; return ``(stop, top_n)`` normalised."""
    if not prompt:
        raise ValidationError("`inputs` cannot be empty")
    if temperature is not None and temperature <= 0:
        raise ValidationError("`temperature` must be strictly positive")
    if top_p is not None and not 0.0 < top_p < 1.0:
        raise ValidationError("`top_p` must be > 0.0 and < 1.0")
    if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or max_new_tokens <= 0):
        raise ValidationError("`max_new_tokens` must be strictly positive")
    stop = list(stop or [])
    if len(stop) > max_stop_sequences:
        raise ValidationError(f"`stop` supports up to {max_stop_sequences} stop sequences. Given: {len(stop)}")
    top_n = int(top_n or 0)
    if top_n > max_top_n_tokens:
        raise ValidationError(f"`top_n_tokens` must be >= 0 and <= {max_top_n_tokens}. Given: {top_n}")
    if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**64):
        raise ValidationError("`seed` must be an unsigned 64-bit integer")
    return stop, top_n


def check_length(n_input: int, max_new_tokens: int | None, *, max_input_tokens: int, max_total_tokens: int) -> int:
    """Check the prompt's length against TGI's limits; return ``max_new_tokens``, TGI's default when None."""
    if max_new_tokens is None:
        max_new_tokens = min(max(max_total_tokens - n_input, 1), 1024)
    if n_input + max_new_tokens > max_total_tokens:
        raise ValidationError(
            f"`inputs` tokens + `max_new_tokens` must be <= {max_total_tokens}. Given: {n_input} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
        )
    if n_input > max_input_tokens:
        raise ValidationError(f"`inputs` must have less than {max_input_tokens} tokens. Given: {n_input}")
    return max_new_tokens


def openai_params(body: Any) -> dict[str, Any]:
    """The generation settings of an OpenAI-style request body, in TGI's terms (temperature 0: greedy)."""
    if body.get("stream"):
        raise ValidationError("streaming is not served by this test server")
    temperature = body.get("temperature")
    greedy = temperature is not None and temperature == 0
    return {
        "max_new_tokens": body.get("max_tokens"),
        "temperature": None if greedy or temperature is None else temperature,
        "top_p": None if greedy else body.get("top_p"),
        "seed": body.get("seed"),
        "stop": [body["stop"]] if isinstance(body.get("stop"), str) else body.get("stop"),
    }
