"""Answer (evolved) instructions with a responder model: ``ds.map(respond, batched=True)``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from . import prompts
from .backends.base import GREEDY, Backend, GenerationRequest, GenerationResult, SamplingParams
from .backends.local import TransformersBackend
from .errors import ConfigError
from .seeding import row_seed, text_key
from .transform import Batch, GenerationTransform, Prepared, outcome
from .validation import text_problem

TEMPLATE = "respond/answer"


@dataclass
class Respond(GenerationTransform):
    """Answer each instruction (with its input) through ``backend`` and its chat template.

    The prompt is ``prompts/respond/answer.jinja``; decoding is greedy by default, as in the
    paper. Rows whose ``skip_unless`` column exists and is not ``"ok"`` (evolutions that
    failed or were eliminated) are not answered: they are kept, with status ``skipped`` and a
    reason. Every companion column is named after ``output_column``, so several responders
    can answer the same rows side by side (``Respond(backend=b, output_column="response_b")``).

    Input columns:
        - ``instruction_column`` (default ``instruction``).
        - ``input_column`` (default ``input``; optional): appended to the prompt when non-empty.
        - ``skip_unless`` (default ``evol_status``; optional): only ``ok`` rows are answered.
        - ``id`` (optional): the row key for the seed; else the index, else the instruction.

    Output columns (``<out>`` is ``output_column``, default ``output``):
        - ``<out>`` (str | None): the response.
        - ``<out>_status`` (str): ``ok``, ``truncated`` (hit ``max_new_tokens``), ``failed``
          (backend error or empty text), ``invalid_input`` (no usable instruction),
          ``skipped`` (the row's ``skip_unless`` status is not ``ok``).
        - ``<out>_reason`` (str | None): why the status is not ``ok``.
        - ``<out>_responder`` (str): JSON of the responder's identity, sampling, prompt version.
        - ``<out>_seed`` (int): the row's sampling seed (irrelevant when greedy).

    Raises:
        ConfigError: a bad option or column name.
        MissingColumnError: the instruction column is absent.
        InvalidRowError: a row's instruction is unusable and ``on_invalid="raise"``.
    """

    backend: Backend = field(default_factory=TransformersBackend)
    sampling: SamplingParams = GREEDY
    seed: int = 0
    instruction_column: str = "instruction"
    input_column: str | None = "input"
    output_column: str = "output"
    skip_unless: str | None = "evol_status"
    on_invalid: Literal["mark", "raise"] = "mark"

    stage = "respond"

    def __post_init__(self) -> None:
        if not isinstance(self.output_column, str) or not self.output_column.strip():
            raise ConfigError(f"output_column={self.output_column!r} must be a non-empty column name")
        if self.output_column in (self.instruction_column, self.input_column):
            raise ConfigError(f"output_column={self.output_column!r} would overwrite the instruction or input column")
        self.check_settings()

    @property
    def columns(self) -> dict[str, str]:
        """Names of the output columns, by role: text, status, reason, responder, seed."""
        out = self.output_column
        return {"text": out, "status": f"{out}_status", "reason": f"{out}_reason", "responder": f"{out}_responder", "seed": f"{out}_seed"}

    def prompt_templates(self) -> tuple[str, ...]:
        return (TEMPLATE,)

    def input_columns(self) -> tuple[str, ...]:
        return (self.instruction_column,)

    def stage_settings(self) -> dict[str, Any]:
        return {"output_column": self.output_column}

    def output_features(self) -> dict[str, Any]:
        from datasets import Value

        c = self.columns
        return {
            c["text"]: Value("string"),
            c["status"]: Value("string"),
            c["reason"]: Value("string"),
            c["responder"]: Value("string"),
            c["seed"]: Value("int64"),
        }

    def prepare(self, batch: Batch, indices: list[int] | None) -> Prepared:
        self.check_columns(batch)
        c = self.columns
        texts = batch[self.instruction_column]
        n = len(texts)
        inputs = batch[self.input_column] if self.input_column and self.input_column in batch else [None] * n
        gate = self.skip_gate(batch)
        if getattr(self, "_responder", None) is None:
            self._responder = json.dumps(self.metadata(), sort_keys=True)
        responder = self._responder
        prepared = self.start(n)
        out = prepared.out
        for j, text in enumerate(texts):
            key = batch["id"][j] if "id" in batch else (indices[j] if indices is not None else text_key(str(text)))
            out[c["seed"]][j] = row_seed(self.seed, self.stage, key)
            out[c["responder"]][j] = responder
            if gate is not None and gate[j] != "ok":
                out[c["status"]][j] = "skipped"
                out[c["reason"]][j] = self.skip_reason("answered", gate[j])
                continue
            problem = text_problem(text)
            if problem is not None:
                reason = self.invalid_reason(j, indices, self.instruction_column, problem)
                out[c["status"]][j] = "invalid_input"
                out[c["reason"]][j] = reason
                continue
            extra = value if isinstance(value := inputs[j], str) and value.strip() else None
            prompt = prompts.render(TEMPLATE, instruction=text, input=extra)
            prepared.rows.append(j)
            prepared.requests.append(GenerationRequest.chat(prompt, params=self.sampling, seed=out[c["seed"]][j]))
        return prepared

    def apply(self, out: Batch, row: int, result: GenerationResult) -> None:
        c = self.columns
        text = (result.text or "").strip() if result.ok else None
        status, reason = outcome(result, text, self.sampling.max_new_tokens)
        out[c["text"]][row] = text or None
        out[c["status"]][row] = status
        out[c["reason"]][row] = reason
