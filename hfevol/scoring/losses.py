"""Mean token losses over chosen spans of token sequences, batched and exact.

This is the one loss core of hfevol: IFD/IC-IFD scoring and the student loss of CAR both
describe their work as :class:`TokenSequence` objects (token ids plus named spans of
target tokens) and get back a :class:`SpanLoss` (sum and count of per-token
cross-entropy) for each span.

How it runs:

- **Length buckets.** Sequences are sorted by length and cut into batches of at most
  ``batch_size`` sequences and ``max_batch_tokens`` padded tokens, so padding is small.
- **Exact padding.** Batches are right-padded; the attention mask hides the padding and
  position ids count from 0 in every row, so a sequence's losses do not depend on its
  batch (up to float rounding: about 1e-6 relative in float32).
- **No wasted tokens.** Tokens after the last target predict nothing, so they are not run.
- **Chunked cross-entropy.** The model body runs once per batch; the output head and the
  log-softmax run only on the positions that predict a target token, a chunk at a time,
  so memory never holds batch × length × vocabulary logits. Logits are upcast to float32
  before the log-softmax, as transformers does for its own loss.
- **Checked head.** Before the first batch of a model, the head path is compared with
  ``model(...).logits`` on a short probe. Models whose logits are not ``lm_head(body)``
  up to rounding (an unusual head) fall back to full logits, still chunked for the loss.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_LOGITS_BUDGET_MB = 128
"""Memory for one chunk of float32 logits (its log-softmax takes as much again): chunk = budget / (vocabulary × 4) positions."""


@dataclass(frozen=True)
class TokenSequence:
    """Token ids to run through the model once, and the spans whose losses to average.

    A span ``(name, start, end)`` covers the tokens ``ids[start:end]``; each is predicted
    from the tokens before it, so ``start >= 1`` (the first token is never predicted).
    An empty span (``start == end``) is always allowed and scores nothing. Span names are
    unique within one sequence.
    """

    ids: tuple[int, ...]
    spans: tuple[tuple[str, int, int], ...]
    truncated: bool = False
    """True when :meth:`truncate` cut tokens off."""

    def __post_init__(self) -> None:
        for name, start, end in self.spans:
            if end < start or (end > start and (start < 1 or end > len(self.ids))):
                raise ValueError(f"span {name!r} = [{start}, {end}) does not fit a sequence of {len(self.ids)} tokens (start must be >= 1)")

    def truncate(self, limit: int | None) -> "TokenSequence":
        """Keep the first ``limit`` tokens (right truncation); spans are clipped, possibly to nothing."""
        if limit is None or len(self.ids) <= limit:
            return self
        if limit < 2:
            raise ValueError(f"cannot truncate to {limit} tokens: at least 2 are needed to predict one")
        spans = tuple((name, min(start, limit), min(end, limit)) for name, start, end in self.spans)
        return replace(self, ids=self.ids[:limit], spans=spans, truncated=True)


@dataclass(frozen=True)
class SpanLoss:
    """Sum and count of the per-token cross-entropy (in nats) over one span."""

    total: float
    count: int

    @property
    def mean(self) -> float:
        """The mean token loss; NaN when the span has no tokens."""
        return self.total / self.count if self.count else math.nan


def context_length(model: Any) -> int | None:
    """The longest sequence the model accepts, from its config (None if it does not say)."""
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def span_losses(
    model: Any,
    sequences: Sequence[TokenSequence],
    *,
    batch_size: int = 16,
    max_batch_tokens: int = 32768,
    logits_budget_mb: int = DEFAULT_LOGITS_BUDGET_MB,
    chunk_tokens: int | None = None,
    pad_token_id: int = 0,
    progress: bool | str = False,
) -> list[dict[str, SpanLoss]]:
    """Run every sequence through ``model`` once and return its spans' losses, in input order.

    A sequence whose spans hold no token is not run; its spans get ``SpanLoss(0.0, 0)``.

    Args:
        model: a loaded transformers causal LM.
        sequences: what to score. Sequences longer than the model's context must be
            truncated first (:meth:`TokenSequence.truncate`).
        batch_size: at most this many sequences per forward pass.
        max_batch_tokens: at most this many tokens (padding included) per forward pass;
            a single longer sequence still runs alone.
        logits_budget_mb: memory for one chunk of float32 logits.
        chunk_tokens: positions per chunk of logits (overrides the budget).
        pad_token_id: the id placed in padding (never attended to, never scored).
        progress: show a progress bar; a string is used as its label.

    Raises:
        ConfigError: a size below 1.
        ValueError: a sequence is longer than the model's context.
    """
    import torch

    sizes = {
        "batch_size": batch_size,
        "max_batch_tokens": max_batch_tokens,
        "logits_budget_mb": logits_budget_mb,
        "chunk_tokens": 1 if chunk_tokens is None else chunk_tokens,
    }
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name}={value!r} must be an integer >= 1")
    limit = context_length(model)
    results: list[dict[str, SpanLoss]] = [{name: SpanLoss(0.0, 0) for name, _, _ in seq.spans} for seq in sequences]
    # a sequence with no target token needs no forward pass: its spans stay empty
    runnable = [i for i, seq in enumerate(sequences) if any(end > start for _, start, end in seq.spans)]
    for i in runnable:
        if limit is not None and len(sequences[i].ids) > limit:
            raise ValueError(f"sequence {i} has {len(sequences[i].ids)} tokens, more than the model's context of {limit}; truncate it first")
    lengths = [_run_length(seq) for seq in sequences]
    order = sorted(runnable, key=lengths.__getitem__)
    batches = _buckets(order, lengths, batch_size, max_batch_tokens)
    vocab = _vocab_size(model)
    chunk = chunk_tokens or max(1, (logits_budget_mb * 2**20) // (4 * vocab))
    bar = _progress_bar(len(order), progress)
    with torch.inference_mode():
        for batch in batches:
            _score_batch(model, [sequences[i] for i in batch], chunk, pad_token_id, [results[i] for i in batch])
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    return results


# -- internals -----------------------------------------------------------------------


def _buckets(order: list[int], lengths: list[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Cut sequences sorted by length into batches within both limits."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # sorted ascending, so the newest sequence is the longest: padded size = len × count
        if current and (len(current) >= batch_size or lengths[i] * (len(current) + 1) > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _run_length(seq: TokenSequence) -> int:
    """How many tokens the model must read: up to the one before the last target (later ones predict nothing)."""
    return max((end for _, start, end in seq.spans if end > start), default=1) - 1


def _progress_bar(total: int, progress: bool | str) -> Any:
    if not progress or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=progress if isinstance(progress, str) else "Scoring", unit="seq")


def _vocab_size(model: Any) -> int:
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    return int(model.config.vocab_size)


# Whether a model's logits equal head(body(x)); probed once per model object.
_HEAD_OK: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


def _split_head(model: Any) -> tuple[Any, Any] | None:
    """``(body, head)`` if the model's logits are ``head(body(x).last_hidden_state)``, else None."""
    import torch

    body = getattr(model, "base_model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or body is model or not isinstance(head, torch.nn.Module):
        return None
    known = _HEAD_OK.get(model)
    if known is None:
        probe = torch.arange(1, 9, device=model.device).unsqueeze(0) % _vocab_size(model)
        mask = torch.ones_like(probe)
        with torch.inference_mode():
            full = model(input_ids=probe, attention_mask=mask).logits.float()
            split = head(body(input_ids=probe, attention_mask=mask).last_hidden_state).float()
        scale = full.abs().max().clamp_min(1.0)
        known = bool(full.shape == split.shape and ((full - split).abs().max() / scale) < 1e-3)
        if not known:
            logger.warning("model %s: logits are not lm_head(body); scoring with full logits (more memory)", type(model).__name__)
        _HEAD_OK[model] = known
    return (body, head) if known else None


def _score_batch(model: Any, batch: list[TokenSequence], chunk: int, pad_token_id: int, out: list[dict[str, SpanLoss]]) -> None:
    import torch
    import torch.nn.functional as F

    device = model.device
    runs = [_run_length(seq) for seq in batch]
    width = max(runs)
    ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    segments: list[int] = []
    names: list[tuple[int, str]] = []
    for b, (seq, run) in enumerate(zip(batch, runs)):
        ids[b, :run] = torch.tensor(seq.ids[:run], dtype=torch.long)
        mask[b, :run] = 1
        for name, start, end in seq.spans:
            segment = len(names)
            names.append((b, name))
            # token t is predicted by the output at position t - 1
            rows.extend([b] * (end - start))
            positions.extend(range(start - 1, end - 1))
            targets.extend(seq.ids[start:end])
            segments.extend([segment] * (end - start))
    ids, mask = ids.to(device), mask.to(device)
    position_ids = torch.arange(width, device=device).unsqueeze(0).expand(len(batch), width)
    row_t = torch.tensor(rows, dtype=torch.long, device=device)
    pos_t = torch.tensor(positions, dtype=torch.long, device=device)
    labels = torch.tensor(targets, dtype=torch.long, device=device)
    seg_t = torch.tensor(segments, dtype=torch.long, device=device)
    totals = torch.zeros(len(names), dtype=torch.float64, device=device)

    split = _split_head(model)
    if split is not None:
        body, head = split
        hidden = body(input_ids=ids, attention_mask=mask, position_ids=position_ids).last_hidden_state
        picked = hidden[row_t, pos_t]
        del hidden
        project = head
    else:
        picked = model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits[row_t, pos_t]
        project = None
    for lo in range(0, picked.shape[0], chunk):
        part = picked[lo : lo + chunk]
        logits = (project(part) if project is not None else part).float()
        nll = F.cross_entropy(logits, labels[lo : lo + chunk], reduction="none")
        totals.index_add_(0, seg_t[lo : lo + chunk], nll.double())
    totals_list = totals.tolist()
    counts = [0] * len(names)
    for s in segments:
        counts[s] += 1
    for segment, (b, name) in enumerate(names):
        out[b][name] = SpanLoss(total=totals_list[segment], count=counts[segment])
