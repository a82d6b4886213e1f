"""IFD / IC-IFD scoring as a ``datasets`` map transform."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError
from ..extras import require_local
from ..models.loading import EMBEDDED_MODEL, LoadedModel
from ..status import Status
from ..transform import RowTransform
from ..validation import check_int
from .construction import ANSWER, ANSWER_GIVEN_QUESTION, MODES, QUESTION, Mode, chat_sequences, question_text, reference_sequences
from .frontend import ScoringModel
from .ifd import IcIfdForm, IfdForm, check_forms, row_scores
from .losses import SpanLoss, TokenSequence

Batch = dict[str, list[Any]]

OUTPUT_COLUMNS: tuple[str, ...] = (
    "loss_q",
    "loss_a_given_q",
    "loss_a",
    "ifd",
    "ic_ifd",
    "tokens_q",
    "tokens_a_given_q",
    "tokens_a",
    "score_truncated",
    "score_status",
    "score_reason",
)

TRUNCATION_RULE = "right: a sequence longer than max_length keeps its first max_length tokens; spans are clipped"


@dataclass
class RowScoring(RowTransform):
    """What every IFD / IC-IFD scorer shares: settings, row checks and the output columns.

    Subclasses (:class:`Score`, :class:`~hfevol.scoring.endpoint.EndpointScore`) say where
    the span losses come from (:meth:`_score`) and describe their model (:meth:`metadata`).
    """

    mode: Mode = "reference"
    ifd_form: IfdForm = "loss_ratio"
    ic_ifd_form: IcIfdForm = "ratio"
    instruction_column: str = "instruction"
    input_column: str | None = "input"
    output_column: str = "output"
    max_length: int | None = None
    on_invalid: Literal["mark", "raise"] = "mark"
    skip_unless: str | None = "evol_status"
    """A status column (optional): rows where it exists and is not ``ok`` (eliminated or failed
    evolutions, which have no answer) are not scored; they get ``score_status="skipped"``."""
    progress: bool = False
    """Show a progress bar over the work of each call (the CLI uses ``map``'s own bar)."""

    stage = "score"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r} is not known", hint=f"choose one of {', '.join(MODES)}.")
        check_forms(self.ifd_form, self.ic_ifd_form)
        if self.max_length is not None and (not isinstance(self.max_length, int) or self.max_length < 2):
            raise ConfigError(f"max_length={self.max_length!r} must be None or an integer >= 2")
        self.check_settings()

    def input_columns(self) -> tuple[str, ...]:
        return (self.instruction_column, self.output_column)

    def output_features(self) -> dict[str, Any]:
        from datasets import Value

        types = {c: Value("float64") for c in OUTPUT_COLUMNS[:5]}
        types.update({c: Value("int64") for c in OUTPUT_COLUMNS[5:8]})
        return {**types, "score_truncated": Value("bool"), "score_status": Value("string"), "score_reason": Value("string")}

    def stage_record(self, backend: Any, *, max_length: int | None, **settings: Any) -> dict[str, Any]:
        """:meth:`metadata` in the run record's stage shape: ``backend``, the subclass's ``settings``, then construction, forms and truncation."""
        from ..record import StageRecord

        return StageRecord.describe(
            self.stage,
            backend=backend,
            **settings,
            mode=self.mode,
            ifd_form=self.ifd_form,
            ic_ifd_form=self.ic_ifd_form,
            max_length=max_length,
            truncation=TRUNCATION_RULE,
            columns={"instruction": self.instruction_column, "input": self.input_column, "output": self.output_column, "skip_unless": self.skip_unless},
        )

    def __call__(self, batch: Batch, indices: list[int] | None = None) -> Batch:
        instructions, outputs, inputs = self._columns(batch)
        return self.score_texts(instructions, outputs, inputs, indices=indices, gate=self.skip_gate(batch))

    def score_texts(
        self,
        instructions: Sequence[Any],
        outputs: Sequence[Any],
        inputs: Sequence[Any] | None = None,
        *,
        indices: Sequence[int] | None = None,
        gate: Sequence[Any] | None = None,
    ) -> Batch:
        """Score parallel lists of texts; returns the output columns (see the class docstring).

        ``gate`` holds each row's ``skip_unless`` status: rows where it is not ``ok`` are skipped.
        """
        out, questions, answers, rows = self._prepare(instructions, outputs, inputs, indices, gate)
        if rows:
            self._score(questions, answers, rows, out, indices)
        return out

    # -- internals -------------------------------------------------------------------

    def _score(self, questions: list[str], answers: list[str], rows: list[int], out: Batch, indices: Sequence[int] | None) -> None:
        """Fill row ``rows[k]`` of ``out`` with the scores of ``(questions[k], answers[k])``."""
        raise NotImplementedError

    def _columns(self, batch: Batch) -> tuple[list[Any], list[Any], list[Any]]:
        self.check_columns(batch)
        instructions = batch[self.instruction_column]
        inputs = batch[self.input_column] if self.input_column and self.input_column in batch else [None] * len(instructions)
        return instructions, batch[self.output_column], inputs

    def _prepare(
        self,
        instructions: Sequence[Any],
        outputs: Sequence[Any],
        inputs: Sequence[Any] | None,
        indices: Sequence[int] | None,
        gate: Sequence[Any] | None = None,
    ) -> tuple[Batch, list[str], list[str], list[int]]:
        """The output columns with the rows that cannot be scored filled in, and the questions and answers of the others."""
        n = len(instructions)
        if len(outputs) != n or (inputs is not None and len(inputs) != n):
            raise ConfigError("instructions, outputs and inputs must have the same length")
        inputs = inputs if inputs is not None else [None] * n
        out: Batch = {c: [None] * n for c in OUTPUT_COLUMNS}
        questions: list[str] = []
        answers: list[str] = []
        rows: list[int] = []
        for j in range(n):
            if gate is not None and gate[j] != "ok":
                fill_row(out, j, status="skipped", reason=self.skip_reason("scored", gate[j]))
                continue
            problem = self._row_problem(instructions[j], inputs[j], outputs[j])
            if problem is not None:
                status, column, what = problem
                if status == "invalid_input":
                    what = self.invalid_reason(j, indices, column, what)
                fill_row(out, j, status=status, reason=what)
                continue
            questions.append(question_text(instructions[j], inputs[j]))
            answers.append(outputs[j])
            rows.append(j)
        return out, questions, answers, rows

    def _row_problem(self, instruction: Any, input: Any, output: Any) -> tuple[Status, str | None, str] | None:
        """``(status, column, problem)`` for a row that cannot be scored, else None."""
        for column, value in ((self.instruction_column, instruction), (self.input_column, input), (self.output_column, output)):
            if value is None and column == self.input_column:
                continue
            if value is None:
                return "invalid_input", column, "the value is None"
            if not isinstance(value, str):
                return "invalid_input", column, f"the value is a {type(value).__name__}, not a string"
        if not question_text(instruction, input).strip():
            return "undefined", None, "empty instruction"
        if not output.strip():
            return "undefined", None, "empty answer"
        return None

    def _answer_cut_away(self, out: Batch, j: int, full: TokenSequence, cut: TokenSequence, limit: int | None) -> bool:
        """Mark row ``j`` undefined, before any model call, when truncation leaves L(A|Q) no token.

        The question alone then fills the limit, so neither IFD nor IC-IFD can be computed:
        running the row (up to the whole context) would only confirm it.
        """
        start, end = _span(cut, ANSWER_GIVEN_QUESTION)
        if not cut.truncated or end > start:
            return False
        question = _span(full, ANSWER_GIVEN_QUESTION)[0]
        fill_row(
            out,
            j,
            status="undefined",
            reason=f"the question alone fills the {limit}-token limit ({question} tokens), so L(A|Q) has no scored tokens; not run through the model",
            truncated=True,
        )
        return True

    def _record(self, out: Batch, j: int, conditioned: dict[str, SpanLoss], alone: dict[str, SpanLoss], *, truncated: bool, limit: int | None) -> None:
        """Row ``j``'s scores from its span losses."""
        q, aq, a = conditioned[QUESTION], conditioned[ANSWER_GIVEN_QUESTION], alone[ANSWER]
        scores = row_scores(q, aq, a, ifd_form=self.ifd_form, ic_ifd_form=self.ic_ifd_form)
        ok = math.isfinite(scores.ifd) and math.isfinite(scores.ic_ifd)
        reasons = list(scores.reasons) + ([f"truncated to {limit} tokens"] if truncated else [])
        fill_row(
            out,
            j,
            status="ok" if ok else "undefined",
            reason="" if ok else "; ".join(reasons),
            scores=(scores.loss_q, scores.loss_a_given_q, scores.loss_a, scores.ifd, scores.ic_ifd),
            counts=(q.count, aq.count, a.count),
            truncated=truncated,
        )


@dataclass
class Score(RowScoring):
    """Score each row's instruction data with IFD and IC-IFD: ``ds.map(score, batched=True)``.

    The model loads once, on first use (``"embedded"``, a Hub id or a local folder; on
    CUDA it runs in bfloat16 unless ``dtype`` says otherwise). Each row costs two
    forward passes: the question followed by the answer (L(Q) and L(A|Q)), and the
    answer alone (L(A)). Rows are batched by length with exact padding, so a row's
    values do not depend on the rows around it. Texts and token spans:
    :mod:`hfevol.scoring.construction`; formulas and undefined cases:
    :mod:`hfevol.scoring.ifd`.

    Input columns:
        - ``instruction_column`` (default ``instruction``): the instruction.
        - ``input_column`` (default ``input``): optional context appended to the
          instruction; a missing column, None or "" means no input.
        - ``output_column`` (default ``output``): the answer.
        - ``skip_unless`` (default ``evol_status``; optional): only ``ok`` rows are scored.

    Output columns (every input column is kept unchanged):
        - ``loss_q``, ``loss_a_given_q``, ``loss_a`` (float): mean token losses; NaN when undefined.
        - ``ifd``, ``ic_ifd`` (float): the scores in the configured forms; NaN when undefined.
        - ``tokens_q``, ``tokens_a_given_q``, ``tokens_a`` (int): tokens each loss averages over.
        - ``score_truncated`` (bool): a sequence was cut to ``max_length`` tokens
          (:data:`TRUNCATION_RULE`).
        - ``score_status`` (str): ``ok`` (both scores defined); ``undefined`` (a score is
          NaN: empty instruction or answer, a question that alone fills ``max_length``
          (decided before the model runs), no scored tokens, a zero loss);
          ``invalid_input`` (a None or non-string value; nothing was scored);
          ``skipped`` (the row's ``skip_unless`` status, ``evol_status`` by default, is not
          ``ok``: an eliminated or failed evolution has no answer to score).
        - ``score_reason`` (str): why the status is not ``ok``; ``""`` when it is (never
          None, so that ``datasets`` can type the column from any batch).

    Raises:
        ConfigError: an unknown mode or form, a bad batch size or max_length, or
            ``mode="chat"`` with a tokenizer that has no chat template.
        MissingColumnError: the instruction or output column is absent.
        InvalidRowError: a row holds a None or non-string value and ``on_invalid="raise"``.
        MissingDependencyError: when built, without ``hfevol[local]`` (torch, transformers).
        ModelNotFoundError, ModelLoadError: the model cannot be found or is not a causal LM.
    """

    model: str = EMBEDDED_MODEL
    batch_size: int = 16
    dtype: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("batch_size", self.batch_size)
        require_local(f"Score(model={self.model!r})", self.model)

    @property
    def scorer(self) -> ScoringModel:
        """The scoring model, loaded on first use (runtime state: never pickled)."""
        if getattr(self, "_scorer", None) is None:
            scorer = ScoringModel.load(self.model, dtype=self.dtype, device=self.device)
            self._encoder = scorer.encoder(chat_template=self.mode == "chat")
            self._scorer = scorer
        return self._scorer

    @property
    def loaded(self) -> LoadedModel:
        """The scoring model, loaded on first use."""
        return self.scorer.loaded

    def effective_max_length(self) -> int | None:
        """``max_length`` capped by the model's context (None: no limit)."""
        return self.scorer.limit(self.max_length)

    def metadata(self) -> dict[str, Any]:
        """Everything needed to reproduce the scores, in the run record's stage shape: model identity, construction, forms, truncation."""
        from ..record import BackendInfo

        return self.stage_record(BackendInfo.from_description({"kind": "transformers", **self.loaded.identity}), max_length=self.effective_max_length())

    def _score(self, questions: list[str], answers: list[str], rows: list[int], out: Batch, indices: Sequence[int] | None) -> None:
        scorer = self.scorer
        build = chat_sequences if self.mode == "chat" else reference_sequences
        pairs = build(self._encoder, questions, answers)
        limit = self.effective_max_length()
        kept: list[int] = []
        sequences: list[TokenSequence] = []
        for k, j in enumerate(rows):
            cut = scorer.fit(pairs[k], self.max_length)
            if not self._answer_cut_away(out, j, pairs[k][0], cut[0], limit):
                kept.append(j)
                sequences.extend(cut)
        if not sequences:
            return
        losses = scorer.losses(sequences, batch_size=self.batch_size, progress=self.progress and "Scoring")
        for k, j in enumerate(kept):
            truncated = sequences[2 * k].truncated or sequences[2 * k + 1].truncated
            self._record(out, j, losses[2 * k], losses[2 * k + 1], truncated=truncated, limit=limit)


def _span(sequence: TokenSequence, name: str) -> tuple[int, int]:
    return next((start, end) for span, start, end in sequence.spans if span == name)


def fill_row(
    out: Batch,
    j: int,
    *,
    status: Status,
    reason: str,
    scores: tuple[float, ...] = (math.nan,) * 5,
    counts: tuple[int, ...] = (0, 0, 0),
    truncated: bool = False,
) -> None:
    """Write row ``j`` of the output columns: its status and reason, scores (NaN by default), token counts and truncation flag."""
    for column, value in zip(("loss_q", "loss_a_given_q", "loss_a", "ifd", "ic_ifd"), scores):
        out[column][j] = float(value)
    for column, value in zip(("tokens_q", "tokens_a_given_q", "tokens_a"), counts):
        out[column][j] = int(value)
    out["score_truncated"][j] = truncated
    out["score_status"][j] = status
    out["score_reason"][j] = reason
