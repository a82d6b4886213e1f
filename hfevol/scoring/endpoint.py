"""IFD / IC-IFD through a TGI server: the texts and spans of local scoring, log-probs from the server.

How a row is scored (``mode="reference"``):

1. The question, the conditioned text ``Q + "\\n" + A`` and the answer are tokenized by the
   server's ``/tokenize`` (the served model's own tokenizer, with its special tokens, as
   TGI's ``/generate`` reads a prompt), and :func:`~hfevol.scoring.construction.reference_sequences`
   places the spans exactly as for local scoring.
2. The conditioned text and the answer are each sent to ``/generate`` with
   ``decoder_input_details``; the prefill gives every prompt token's log-probability.
   The prefill's token ids must equal the ``/tokenize`` ids (else
   :class:`~hfevol.errors.TokenMismatchError`, naming the row).
3. Each loss is minus the mean log-probability over its span, as in
   :mod:`hfevol.scoring.losses`, then :mod:`hfevol.scoring.ifd` gives IFD and IC-IFD.

**Special tokens.** The reference counts ``n = len(encode(Q))`` with special tokens, and
TGI adds the tokenizer's special tokens to a ``/generate`` prompt by default; ``/tokenize``
is asked the same. A tokenizer that adds a BOS token puts it at position 0 of both
sequences, where it is never scored (as locally); SmolLM2 adds none, so L(Q) starts at the
question's second token on both paths. The id check enforces that both paths agree.

**Not yet supported:** ``mode="chat"`` (its pieces are tokenized one by one, which a
``/generate`` prompt cannot reproduce) and vLLM's ``prompt_logprobs`` (the OpenAI kind).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.tgi import TGIBackend
from ..errors import ConfigError, EndpointError, TokenMismatchError
from .construction import conditioned_text, reference_sequences
from .losses import SpanLoss, TokenSequence
from .transform import TRUNCATION_RULE, Batch, _fill, _RowScoring

Prefill = list[tuple[int, str, float | None]]

CHECK_TEXT = "hfevol checks that this server returns prompt log-probabilities."


@dataclass
class EndpointScore(_RowScoring):
    """Score rows with IFD and IC-IFD through a TGI server: ``ds.map(score.acall, batched=True)``.

    The same values as :class:`~hfevol.scoring.Score` with the model the server runs,
    up to the server's float precision (see :mod:`hfevol.scoring.endpoint`). The server
    must return prompt log-probabilities: TGI 3 needs ``--enable-prefill-logprobs``.
    Each row costs two ``/generate`` requests (one new token each) and three
    ``/tokenize`` requests; every row of a batch is in flight at once, up to the
    backend's ``max_in_flight``. ``__call__`` runs them on a private event loop;
    ``acall`` on the caller's.

    Args:
        endpoint: a TGI URL, several URLs (replicas of one model), or a
            :class:`~hfevol.backends.tgi.TGIBackend` (retries, headers, token).
        max_length: as in ``Score``: longer sequences are scored on their first
            ``max_length`` tokens (:data:`~hfevol.scoring.transform.TRUNCATION_RULE`).
            Sequences longer than the server's ``max_input_tokens`` are not sent.

    Input columns and output columns: as :class:`~hfevol.scoring.Score`, with two more
    ``score_status`` values: ``too_long`` (a sequence exceeds the server's input limit;
    set ``max_length`` no higher than it to score the start) and ``error`` (the server
    failed on the row after its retries; the reason says how).

    Raises:
        ConfigError: ``mode="chat"``, or ``endpoint`` is not a TGI URL or backend.
        EndpointError: at start-up, before any row: the server is unreachable, refuses
            the token, has no ``/tokenize``, or returns no prompt log-probabilities.
        TokenMismatchError: the server's prefill tokens differ from its ``/tokenize``
            ids for a row (named).
        MissingColumnError, InvalidRowError: as ``Score``.
    """

    endpoint: TGIBackend | str | Sequence[str] = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode != "reference":
            raise ConfigError(
                f"mode={self.mode!r} is not yet supported through an endpoint",
                hint="use mode='reference', or score with the local model (Score).",
            )
        if isinstance(self.endpoint, (str, list, tuple)) and self.endpoint:
            self.endpoint = TGIBackend(urls=self.endpoint)
        if not isinstance(self.endpoint, TGIBackend):
            raise ConfigError(
                f"endpoint={self.endpoint!r} must be a TGI server URL, a list of replica URLs or a TGIBackend",
                hint="only TGI's prefill log-probs are supported; vLLM's prompt_logprobs is not yet.",
            )

    @property
    def backend(self) -> TGIBackend:
        assert isinstance(self.endpoint, TGIBackend)
        return self.endpoint

    # -- start-up check ----------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Check the server once, before any row: reachable, ``/tokenize``, prompt log-probs. Returns its description."""
        return self.backend.run(self.acheck)

    async def acheck(self) -> dict[str, Any]:
        """The async form of :meth:`check`."""
        if getattr(self, "_served", None) is None:
            backend = self.backend
            try:
                await backend.atokenize(CHECK_TEXT)
            except EndpointError as exc:
                if exc.cause != "not_found":
                    raise
                raise EndpointError(
                    f"{exc.url} has no /tokenize route, which endpoint scoring needs for token boundaries",
                    cause="unsupported",
                    url=exc.url,
                    hint="serve the model with Text Generation Inference (TGI).",
                ) from exc
            await backend.aprompt_logprobs(CHECK_TEXT)  # raises, with the server flag to set, when there are none
            self._served = backend.describe()
        return self._served

    def metadata(self) -> dict[str, Any]:
        """What reproduces the scores: the served model and server, construction, forms, truncation."""
        served = self.check()
        return {
            "stage": "score",
            "model": {"model": served["model"], "revision": served["revision"]},
            "endpoint": served,
            "logprobs": "tgi prefill (decoder_input_details)",
            "mode": self.mode,
            "ifd_form": self.ifd_form,
            "ic_ifd_form": self.ic_ifd_form,
            "max_length": self.max_length,
            "truncation": TRUNCATION_RULE,
            "columns": {"instruction": self.instruction_column, "input": self.input_column, "output": self.output_column},
        }

    # -- scoring -----------------------------------------------------------------------

    async def acall(self, batch: Batch, indices: list[int] | None = None) -> Batch:
        """``__call__`` on the running event loop (for ``ds.map(score.acall, ...)`` and async code)."""
        out, questions, answers, rows = self._prepare(*self._columns(batch), indices)
        if rows:
            await self._ascore(questions, answers, rows, out, indices)
        return out

    def _score(self, questions: list[str], answers: list[str], rows: list[int], out: Batch, indices: Sequence[int] | None) -> None:
        self.backend.run(lambda: self._ascore(questions, answers, rows, out, indices))

    async def _ascore(self, questions: list[str], answers: list[str], rows: list[int], out: Batch, indices: Sequence[int] | None) -> None:
        served = await self.acheck()
        backend = self.backend
        texts = list(dict.fromkeys((*questions, *answers, *(conditioned_text(q, a) for q, a in zip(questions, answers)))))
        ids = await asyncio.gather(*(backend.atokenize(text) for text in texts))
        pairs = reference_sequences(_KnownIds(dict(zip(texts, ids))), questions, answers)
        server_limit = served.get("server", {}).get("max_input_tokens")
        bar = _progress(len(rows)) if self.progress else None

        async def one(k: int) -> None:
            j = rows[k]
            sequences = pairs[k]
            try:
                longest = max(len(s.ids) for s in sequences)
                if isinstance(server_limit, int) and longest > server_limit:
                    _fill(out, j, status="too_long", reason=f"{longest} tokens; the server takes at most {server_limit} (max_input_tokens)")
                    return
                texts = (conditioned_text(questions[k], answers[k]), answers[k])
                prefills = await asyncio.gather(*(backend.aprompt_logprobs(t) for t in texts))
            except EndpointError as exc:
                if exc.fatal:
                    raise
                _fill(out, j, status="error", reason=exc.message)
                return
            finally:
                if bar is not None:
                    bar.update(1)
            row = indices[j] if indices is not None else f"#{j} of this batch"
            for sequence, prefill in zip(sequences, prefills):
                _check_ids(sequence, prefill, row=row, url=backend.urls[0])
            cut = [s.truncate(self.max_length) for s in sequences]
            conditioned, alone = (_span_losses(c, p, row=row, url=backend.urls[0]) for c, p in zip(cut, prefills))
            self._record(out, j, conditioned, alone, truncated=any(s.truncated for s in cut), limit=self.max_length)

        try:
            await asyncio.gather(*(one(k) for k in range(len(rows))))
        finally:
            if bar is not None:
                bar.close()


@dataclass
class _KnownIds:
    """An :class:`~hfevol.scoring.construction.Encoder` over ``/tokenize`` ids (with special tokens) fetched beforehand, concurrently."""

    ids: dict[str, list[int]]

    def encode(self, texts: Sequence[str], *, special_tokens: bool) -> list[list[int]]:
        assert special_tokens, "reference mode encodes with special tokens only"
        return [self.ids[text] for text in texts]

    def render_chat(self, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
        raise ConfigError("mode='chat' is not yet supported through an endpoint")


def _check_ids(sequence: TokenSequence, prefill: Prefill, *, row: int | str, url: str) -> None:
    served = [token_id for token_id, _, _ in prefill]
    if served != list(sequence.ids):
        at = next((i for i, (a, b) in enumerate(zip(served, sequence.ids)) if a != b), min(len(served), len(sequence.ids)))
        raise TokenMismatchError(
            f"row {row}: {url} scored other tokens than its /tokenize gave for the same text "
            f"({len(served)} vs {len(sequence.ids)} tokens, first difference at position {at})",
            hint="the server's /generate and /tokenize must use the same tokenizer and special tokens; check the server's configuration.",
        )


def _span_losses(sequence: TokenSequence, prefill: Prefill, *, row: int | str, url: str) -> dict[str, SpanLoss]:
    """Each span's loss: minus the sum of its tokens' prefill log-probs, and their count."""
    losses = {}
    for name, start, end in sequence.spans:
        values = [prefill[i][2] for i in range(start, end)]
        if any(not isinstance(v, (int, float)) for v in values):
            raise EndpointError(f"row {row}: {url} returned a prefill token without a log-probability inside span {name!r}", cause="malformed", url=url)
        losses[name] = SpanLoss(-math.fsum(values), len(values))
    return losses


def _progress(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Scoring through the endpoint", unit="row")
