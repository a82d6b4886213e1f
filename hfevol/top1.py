"""Top-1 token probability, recorded by the generation call itself (no second pass).

At each generated position the evolver's largest next-token probability says how broad its
output space is there (the evolver-analysis paper's Figure 5). A request with
``top1=True`` makes a backend return it in :attr:`GenerationResult.top1`: the local model
reads it from its logits (:class:`~hfevol.backends._sampling.Top1Recorder`), endpoints from
the log-probabilities they send back. This module turns one row's values into its columns,
says what was measured (for the stage record) and checks, before any row, that a backend
returns them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from .backends.base import Backend, GenerationRequest, SamplingParams
from .errors import ConfigError

DEFAULT_K = 5
"""Positions averaged in ``top1_mean_k``: the first 5, as the paper's reference code records."""

COLUMNS: tuple[str, ...] = ("top1_mean_k", "top1_mean_all", "top1_positions")
"""Per-row columns: mean top-1 probability over the first K positions and over all, and the number of positions."""

PROBE_PROMPT = "Say hello."


def check_k(k: Any, *, option: str = "top1_k") -> int:
    """``k`` as the number of leading positions to average; a one-line error naming ``option`` otherwise."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        shown = f"{option} {k!r}" if option.startswith("--") else f"{option}={k!r}"
        raise ConfigError(f"{shown} must be an integer >= 1", hint="the paper's code averages the first 5 positions (--top1-k 5).")
    return k


def row_columns(values: Sequence[float] | None, k: int) -> dict[str, Any]:
    """One row's columns from its per-position top-1 probabilities (all None when there are none)."""
    if values is None:
        return dict.fromkeys(COLUMNS)
    values = [float(v) for v in values]
    if not values:
        return {"top1_mean_k": None, "top1_mean_all": None, "top1_positions": 0}
    head = values[:k]
    return {"top1_mean_k": math.fsum(head) / len(head), "top1_mean_all": math.fsum(values) / len(values), "top1_positions": len(values)}


def features() -> dict[str, Any]:
    from datasets import Value

    return {"top1_mean_k": Value("float64"), "top1_mean_all": Value("float64"), "top1_positions": Value("int64")}


def _inner(backend: Backend) -> Backend:
    from .backends.base import innermost

    return innermost(backend)  # through the request cache and the token meter


def measurement(backend: Backend, sampling: SamplingParams, k: int) -> dict[str, Any]:
    """What the top-1 columns hold, for the stage record: decoding, distribution (raw or processed), K, source."""
    inner = _inner(backend)
    decoding = "greedy" if sampling.greedy else "sampled"
    kind = getattr(inner, "kind", type(inner).__name__)
    if kind == "transformers":
        distribution, source = "raw", "the model's logits, read by a logits processor before the row sampler (no temperature or top-p)"
    elif kind == "tgi":
        route = getattr(inner, "route", "chat")
        where = "details.tokens (and top_tokens when sampled)" if route == "generate" else "choices[0].logprobs (top_logprobs=1)"
        if sampling.greedy:
            distribution, source = "raw", f"TGI {where}; greedy decoding applies no temperature or top-p"
        else:
            distribution, source = "processed", f"TGI {where}; TGI takes log-probabilities after temperature and top-p, so sharper than the raw distribution"
    elif kind == "openai":
        distribution = "raw"
        source = "the server's logprobs (top_logprobs=1); vLLM reports raw log-probabilities by default (before temperature and top-p); other OpenAI-compatible servers: not checked"
    else:
        distribution, source = "unknown", f"backend {kind!r}"
    return {
        "decoding": decoding,
        "distribution": distribution,
        "k": k,
        # Measured against vLLM 0.32: on a row that ends by itself the server also reports the end-of-sequence
        # step, so top1_positions is one more than a local run's (top1_mean_k is the same when the row is longer than k).
        "positions": "generated tokens; the end-of-sequence step is left out"
        if kind == "transformers"
        else "generated tokens as the server reports them; vLLM includes the end-of-sequence step of a row that ends by itself",
        "source": source,
        "columns": list(COLUMNS),
    }


def check_support(backend: Backend, sampling: SamplingParams) -> None:
    """Make sure ``backend`` returns top-1 probabilities, before any row is sent.

    The local model always does. Any other backend gets one request of one token with the
    run's decoding (through the request cache, so a later run with the same model sends
    nothing); an answer without log-probabilities raises.

    Raises:
        ConfigError: the backend answered without log-probabilities, or the request failed.
    """
    inner = _inner(backend)
    if getattr(inner, "kind", None) == "transformers":
        return
    params = dataclasses.replace(sampling, max_new_tokens=1, stop=())
    (result,) = backend.generate([GenerationRequest.chat(PROBE_PROMPT, params=params, seed=0, top1=True)])
    urls = getattr(inner, "urls", None)
    server = f"{getattr(inner, 'kind', type(inner).__name__)} endpoint {', '.join(urls)}" if urls else f"backend {type(inner).__name__}"
    if not result.ok:
        raise ConfigError(
            f"--record-top1: the {server} failed a one-token request with log-probabilities: {result.error}",
            hint="serve the model with vLLM or TGI (both return log-probabilities), or leave out --record-top1.",
        )
    if not result.top1:
        raise ConfigError(
            f"--record-top1: the {server} returned no log-probabilities for the generated tokens",
            hint="serve the model with vLLM or TGI (both return log-probabilities), or leave out --record-top1.",
        )
