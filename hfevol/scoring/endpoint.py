"""IFD / IC-IFD through an inference server: the texts and spans of local scoring, log-probs from the server.

Two kinds of server give every prompt token's log-probability: TGI (prefill details,
``decoder_input_details``; the server needs ``--enable-prefill-logprobs``) and vLLM
(``prompt_logprobs`` on ``/v1/completions``, an extension of the OpenAI API).

How a row is scored (``mode="reference"``):

1. The question, the conditioned text ``Q + "\\n" + A`` and the answer are tokenized by the
   server's ``/tokenize`` (the served model's own tokenizer, with its special tokens, as
   the server reads a text prompt), and :func:`~hfevol.scoring.construction.reference_sequences`
   places the spans exactly as for local scoring.
2. The conditioned sequence and the answer are each scored by the server, one new token
   each. TGI: the texts go to ``/generate`` with ``decoder_input_details``, and the prefill's
   token ids must equal the ``/tokenize`` ids. vLLM: the ``/tokenize`` ids themselves are the
   prompt (cut to ``max_length`` first), so the positions are exactly theirs, and the
   answer must hold each sent token's log-probability. Either way a disagreement raises
   :class:`~hfevol.errors.TokenMismatchError`, naming the row.
3. Each loss is minus the mean log-probability over its span, as in
   :mod:`hfevol.scoring.losses`, then :mod:`hfevol.scoring.ifd` gives IFD and IC-IFD.

**Special tokens.** The reference counts ``n = len(encode(Q))`` with special tokens; TGI
adds the tokenizer's special tokens to a ``/generate`` prompt by default, and vLLM's
``/tokenize`` adds them to the ids it returns (a token-id prompt is taken as it is). A
tokenizer that adds a BOS token puts it at position 0 of both sequences, where it is never
scored (as locally); SmolLM2 adds none, so L(Q) starts at the question's second token on
both paths. The id check enforces that both paths agree.

**Chat mode** (``mode="chat"``) needs vLLM: its pieces are tokenized one by one, which a
text prompt (TGI) cannot reproduce, but a token-id prompt can. The chat template and the
tokenizer are loaded here (the backend's ``tokenizer``, or the served model id from the local
cache), and the start-up check compares their ids with the server's ``/tokenize`` on a probe
text and a rendered conversation, so that a different tokenizer is refused before any row.
The ids of :func:`~hfevol.scoring.construction.chat_sequences` are then sent as they are.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.openai import OpenAIBackend
from ..backends.tgi import TGIBackend
from ..errors import ConfigError, EndpointError, TokenMismatchError
from ..extras import require
from .construction import TokenizerEncoder, chat_sequences, conditioned_text, reference_sequences
from .losses import SpanLoss, TokenSequence
from .transform import Batch, RowScoring, fill_row

Prefill = list[tuple[int, str, float | None]]

CHECK_TEXT = "hfevol checks that this server returns prompt log-probabilities."


@dataclass
class EndpointScore(RowScoring):
    """Score rows with IFD and IC-IFD through a TGI or vLLM server: ``score.map(ds)`` (or ``ds.map(score.acall, batched=True)``).

    The same values as :class:`~hfevol.scoring.Score` with the model the server runs,
    up to the server's float precision (see :mod:`hfevol.scoring.endpoint`). The server
    must return prompt log-probabilities: TGI 3 needs ``--enable-prefill-logprobs``;
    vLLM always answers ``prompt_logprobs``. Each row costs two scoring requests (one new
    token each: TGI's ``/generate``, vLLM's ``/v1/completions``) and three ``/tokenize``
    requests; every row of a batch is in flight at once, up to the backend's
    ``max_in_flight``. ``__call__`` runs them on a private event loop; ``acall`` on the
    caller's.

    Args:
        endpoint: a TGI URL, several URLs (replicas of one model), a
            :class:`~hfevol.backends.tgi.TGIBackend` (retries, headers, token), or, for
            vLLM, an :class:`~hfevol.backends.openai.OpenAIBackend`. A URL alone means TGI.
        max_length: as in ``Score``: longer sequences are scored on their first
            ``max_length`` tokens (:data:`~hfevol.scoring.transform.TRUNCATION_RULE`).
            Sequences longer than the server takes are not sent: TGI's
            ``max_input_tokens`` (checked on the whole text, which TGI reads whole);
            vLLM's ``max_model_len`` less the one generated token (checked after the cut).

    Input columns and output columns: as :class:`~hfevol.scoring.Score`, with two more
    ``score_status`` values: ``too_long`` (a sequence exceeds the server's input limit;
    with vLLM, set ``max_length`` below it to score the start) and ``error`` (the server
    failed on the row after its retries; the reason says how).

    Raises:
        ConfigError: ``endpoint`` is not a URL, a TGIBackend or an OpenAIBackend;
            ``mode="chat"`` with TGI; in chat mode, at start-up, a tokenizer that cannot be
            loaded, has no chat template or is not the served model's.
        EndpointError: at start-up, before any row: the server is unreachable, refuses
            the token, has no ``/tokenize`` in the expected shape, or returns no prompt
            log-probabilities.
        TokenMismatchError: the tokens the server scored differ from its ``/tokenize``
            ids for a row (named).
        MissingColumnError, InvalidRowError: as ``Score``.
    """

    endpoint: TGIBackend | OpenAIBackend | str | Sequence[str] = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.endpoint, (str, list, tuple)) and self.endpoint:
            self.endpoint = TGIBackend(urls=self.endpoint)
        if not isinstance(self.endpoint, (TGIBackend, OpenAIBackend)):
            raise ConfigError(
                f"endpoint={self.endpoint!r} must be a TGI server URL, a list of replica URLs, a TGIBackend or an OpenAIBackend (vLLM)",
                hint="for vLLM pass OpenAIBackend(urls=...); a URL alone means TGI.",
            )
        if self.mode == "chat" and not self.endpoint.sends_ids:
            raise ConfigError(
                "mode='chat' through an endpoint needs vLLM (an OpenAIBackend): TGI reads a text prompt, which cannot reproduce the chat pieces' tokens",
                hint="use mode='reference' with TGI, pass OpenAIBackend(urls=..., tokenizer=...) for vLLM, or score with the local model (Score).",
            )
        if self.mode == "chat":
            require("tokenizer", "mode='chat' through an endpoint (the chat template is rendered here)", "transformers")

    @property
    def backend(self) -> TGIBackend | OpenAIBackend:
        assert isinstance(self.endpoint, (TGIBackend, OpenAIBackend))
        return self.endpoint

    # -- start-up check ----------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Check the server once, before any row: reachable, ``/tokenize``, prompt log-probs. Returns its description."""
        return self.backend.run(self.acheck)

    async def acheck(self) -> dict[str, Any]:
        """The async form of :meth:`check`."""
        if getattr(self, "_served", None) is None:
            backend = self.backend
            scoring = backend.SCORING
            try:
                await backend.atokenize(CHECK_TEXT)
            except EndpointError as exc:
                if exc.cause not in scoring.tokenize_refusals:
                    raise
                raise EndpointError(
                    f"{exc.url} has no /tokenize route that takes {scoring.server}'s request, which endpoint scoring needs for token boundaries ({exc.message})",
                    cause="unsupported",
                    url=exc.url,
                    hint=scoring.hint,
                ) from exc
            await backend.aprompt_logprobs(CHECK_TEXT)  # raises, with what to change on the server, when there are none
            served = backend.describe()
            if self.mode == "chat":
                self._encoder = await _chat_encoder(backend, served["model"])
            self._served = served
        return self._served

    def metadata(self) -> dict[str, Any]:
        """What reproduces the scores, in the run record's stage shape: the served model and server, construction, forms, truncation."""
        from ..record import BackendInfo

        served = self.check()
        backend = BackendInfo.from_description(served, model=self.backend.model or served["model"], served_model=served["model"])
        tokenizer = {"tokenizer": self._encoder.model_name} if self.mode == "chat" else {}
        return self.stage_record(backend, max_length=self.max_length, logprobs=self.backend.SCORING.label, **tokenizer)

    # -- scoring -----------------------------------------------------------------------

    async def acall(self, batch: Batch, indices: list[int] | None = None) -> Batch:
        """``__call__`` on the running event loop (for ``ds.map(score.acall, ...)`` and async code)."""
        out, questions, answers, rows = self._prepare(*self._columns(batch), indices, self.skip_gate(batch))
        if rows:
            await self._ascore(questions, answers, rows, out, indices)
        return out

    def _score(self, questions: list[str], answers: list[str], rows: list[int], out: Batch, indices: Sequence[int] | None) -> None:
        self.backend.run(lambda: self._ascore(questions, answers, rows, out, indices))

    async def _ascore(self, questions: list[str], answers: list[str], rows: list[int], out: Batch, indices: Sequence[int] | None) -> None:
        await self.acheck()
        backend = self.backend
        sends_ids = backend.sends_ids
        if self.mode == "chat":
            pairs = chat_sequences(self._encoder, questions, answers)
        else:
            texts = list(dict.fromkeys((*questions, *answers, *(conditioned_text(q, a) for q, a in zip(questions, answers)))))
            ids = await asyncio.gather(*(backend.atokenize(text) for text in texts))
            pairs = reference_sequences(_KnownIds(dict(zip(texts, ids))), questions, answers)
        limit, rule = backend.prompt_limit()
        bar = _progress(len(rows)) if self.progress else None

        async def one(k: int) -> None:
            j = rows[k]
            cut = [s.truncate(self.max_length) for s in pairs[k]]
            if self._answer_cut_away(out, j, pairs[k][0], cut[0], self.max_length):
                if bar is not None:
                    bar.update(1)
                return
            sent = cut if sends_ids else pairs[k]  # TGI reads the whole text
            try:
                longest = max(len(s.ids) for s in sent)
                if limit is not None and longest > limit:
                    fill_row(out, j, status="too_long", reason=f"{longest} tokens; the server takes at most {limit} ({rule})")
                    return
                prompts: list[Any] = [s.ids for s in cut] if sends_ids else [conditioned_text(questions[k], answers[k]), answers[k]]
                prefills = await asyncio.gather(*(backend.aprompt_logprobs(p) for p in prompts))
            except EndpointError as exc:
                if exc.fatal:
                    raise
                fill_row(out, j, status="error", reason=exc.message)
                return
            finally:
                if bar is not None:
                    bar.update(1)
            row = self.row_label(j, indices)
            for sequence, prefill in zip(sent, prefills):
                _check_ids(sequence, prefill, row=row, url=backend.urls[0])
            conditioned, alone = (_span_losses(c, p, row=row, url=backend.urls[0]) for c, p in zip(cut, prefills))
            self._record(out, j, conditioned, alone, truncated=any(s.truncated for s in cut), limit=self.max_length)

        try:
            await asyncio.gather(*(one(k) for k in range(len(rows))))
        finally:
            if bar is not None:
                bar.close()


async def _chat_encoder(backend: TGIBackend | OpenAIBackend, served_model: str) -> TokenizerEncoder:
    """The local tokenizer and chat template for ``mode="chat"``, checked against the server's ``/tokenize``."""
    from ..models.loading import load_template_tokenizer

    name = backend.tokenizer or served_model
    tokenizer = load_template_tokenizer(
        name,
        purpose="mode='chat' through an endpoint",
        hint="pass the served model's tokenizer: OpenAIBackend(tokenizer='embedded', a local folder or a cached Hub id); CLI: --tokenizer.",
    )
    encoder = TokenizerEncoder(tokenizer, model_name=name)
    conversation = encoder.render_chat([{"role": "user", "content": CHECK_TEXT}, {"role": "assistant", "content": CHECK_TEXT}], generation_prompt=False)
    for text, special in ((CHECK_TEXT, True), (conversation, False)):
        local = encoder.encode([text], special_tokens=special)[0]
        if local != await backend.atokenize(text, special_tokens=special):
            raise ConfigError(
                f"tokenizer {name!r} gives other ids than the server's /tokenize for the same text, so it is not the served model's tokenizer",
                hint="pass the served model's tokenizer (tokenizer=..., CLI: --tokenizer).",
            )
    return encoder


@dataclass
class _KnownIds:
    """An :class:`~hfevol.scoring.construction.Encoder` over ``/tokenize`` ids (with special tokens) fetched beforehand, concurrently."""

    ids: dict[str, list[int]]

    def encode(self, texts: Sequence[str], *, special_tokens: bool) -> list[list[int]]:
        assert special_tokens, "reference mode encodes with special tokens only"
        return [self.ids[text] for text in texts]

    def render_chat(self, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
        raise AssertionError("reference mode renders no chat template")


def _check_ids(sequence: TokenSequence, prefill: Prefill, *, row: int | str, url: str) -> None:
    served = [token_id for token_id, _, _ in prefill]
    if served != list(sequence.ids):
        at = next((i for i, (a, b) in enumerate(zip(served, sequence.ids)) if a != b), min(len(served), len(sequence.ids)))
        raise TokenMismatchError(
            f"row {row}: {url} scored other tokens than its /tokenize gave for the same text "
            f"({len(served)} vs {len(sequence.ids)} tokens, first difference at position {at})",
            hint="the server must score exactly the tokens its /tokenize gives (same tokenizer, same special tokens); check its configuration.",
        )


def _span_losses(sequence: TokenSequence, prefill: Prefill, *, row: int | str, url: str) -> dict[str, SpanLoss]:
    """Each span's loss: minus the sum of its tokens' prefill log-probs, and their count."""
    losses = {}
    for name, start, end in sequence.spans:
        values = [v for i in range(start, end) if isinstance(v := prefill[i][2], (int, float))]
        if len(values) != end - start:
            raise EndpointError(f"row {row}: {url} returned a prefill token without a log-probability inside span {name!r}", cause="malformed", url=url)
        losses[name] = SpanLoss(-math.fsum(values), len(values))
    return losses


def _progress(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Scoring through the endpoint", unit="row")
