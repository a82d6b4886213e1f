"""Several generators answer the same instructions, one response column per generator.

The result is in the layout of Magpie's Generator Zoo: the instruction columns, then one
column per generator named after it, holding that generator's response. Generators are
given as specs (:func:`parse_generator`):

- ``local:MODEL`` (or just ``embedded``/``embedded:gemma3-270m``): a transformers model in
  this process, answering through :class:`~hfevol.respond.Respond`;
- ``http(s)://host:port`` (TGI) or ``openai+http(s)://host:port/v1``: an inference
  endpoint, through the same transform and the endpoint layer;
- ``column:NAME``: responses already in the dataset's column ``NAME``.

``LABEL=SPEC`` names the column (default: derived from the spec). Generated columns come
with Respond's companion columns (``<label>_status``, ``_reason``, ``_responder``, ``_seed``).

A generator that has no usable response for some rows (None, empty, or a failed
generation) makes :func:`check_responses` raise, saying how many; with
``allow_missing=True`` only the rows every generator answered are compared, and the
counts go into the report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..backends.base import GREEDY, Backend, SamplingParams
from ..errors import ConfigError, DataError
from ..validation import require_columns, text_problem

Kind = Literal["local", "endpoint", "column"]


@dataclass(frozen=True)
class GeneratorSpec:
    """One candidate response generator."""

    label: str
    """Its response column, and its name in the report."""
    kind: Kind
    target: str
    """The model name, the endpoint URL, or the existing column."""
    api: str = "tgi"

    def describe(self) -> str:
        return f"{self.label} ({self.kind}: {self.target})"


def _label(text: str) -> str:
    tail = text.rstrip("/").split("/")[-1].split(":")[-1] or text
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip("-") or "generator"


def parse_generator(text: str) -> GeneratorSpec:
    """``[LABEL=]local:MODEL | embedded[:NAME] | http(s)://... | openai+http(s)://... | column:NAME``."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"generator {text!r} is empty")
    label, sep, spec = text.partition("=")
    if not sep or "://" in label or ":" in label:
        label, spec = "", text
    spec = spec.strip()
    if spec.startswith("column:"):
        kind, target, api = "column", spec.removeprefix("column:"), "tgi"
    elif spec.startswith(("http://", "https://", "openai+http://", "openai+https://")):
        api = "openai" if spec.startswith("openai+") else "tgi"
        kind, target = "endpoint", spec.removeprefix("openai+")
    elif spec.startswith("local:"):
        kind, target, api = "local", spec.removeprefix("local:"), "tgi"
    elif spec == "embedded" or spec.startswith("embedded:"):
        kind, target, api = "local", spec, "tgi"
    else:
        raise ConfigError(
            f"generator {text!r} is not understood",
            hint="use local:MODEL, embedded, embedded:gemma3-270m, http(s)://HOST (TGI), openai+http(s)://HOST/v1, or column:NAME; prefix LABEL= to name it.",
        )
    if not target:
        raise ConfigError(f"generator {text!r} names no model, URL or column")
    if label and not re.fullmatch(r"[A-Za-z0-9._-]+", label):
        raise ConfigError(f"generator label {label!r} may hold only letters, digits, '.', '_' and '-'")
    return GeneratorSpec(label=label or _label(target), kind=kind, target=target, api=api)  # type: ignore[arg-type]


def check_labels(specs: Sequence[GeneratorSpec], columns: Sequence[str]) -> None:
    """Labels must be unique, and a generated column must not overwrite an existing one."""
    seen: set[str] = set()
    for spec in specs:
        if spec.label in seen:
            raise ConfigError(f"two generators are labelled {spec.label!r}", hint="name them: --generator NAME=SPEC.")
        seen.add(spec.label)
        if spec.kind == "column":
            require_columns(list(columns), spec.target)
        elif spec.label in columns:
            raise ConfigError(f"generator {spec.describe()} would overwrite the dataset's column {spec.label!r}", hint="name it: --generator NAME=SPEC.")


def backend_for(spec: GeneratorSpec, *, batch_size: int = 8) -> Backend:
    """The backend that answers for a local or endpoint generator."""
    if spec.kind == "local":
        from ..backends.local import TransformersBackend

        return TransformersBackend(model=spec.target, batch_size=batch_size)
    if spec.kind == "endpoint":
        if spec.api == "openai":
            from ..backends.openai import OpenAIBackend

            return OpenAIBackend(urls=[spec.target])
        from ..backends.tgi import TGIBackend

        return TGIBackend(urls=[spec.target])
    raise ConfigError(f"generator {spec.describe()} reads a column; it has no backend")


def sampling_for(spec: GeneratorSpec, sampling: SamplingParams) -> SamplingParams:
    """``sampling``, plus the stop strings of a local model that uses a named plain template."""
    if spec.kind != "local" or not spec.target.startswith("embedded:"):
        return sampling
    from ..models.chat_templates import STOP_STRINGS
    from ..models.embedded import spec as embedded_spec

    stops = STOP_STRINGS.get(embedded_spec(spec.target).chat_template or "", ())
    return SamplingParams(**{**sampling.to_dict(), "stop": tuple(dict.fromkeys((*sampling.stop, *stops)))})


def generate_responses(
    ds: Any,
    specs: Sequence[GeneratorSpec],
    *,
    sampling: SamplingParams = GREEDY,
    seed: int = 0,
    batch_size: int = 8,
    instruction_column: str = "instruction",
    input_column: str | None = "input",
) -> Any:
    """Add one response column per local or endpoint generator (``column:`` ones are read as they are).

    Raises:
        ConfigError: duplicate labels, or a label that would overwrite a column.
        MissingColumnError: the instruction column, or a ``column:`` generator's column, is absent.
    """
    from ..respond import Respond

    require_columns(list(ds.column_names), instruction_column)
    check_labels(specs, ds.column_names)
    for spec in specs:
        if spec.kind == "column":
            continue
        respond = Respond(
            backend=backend_for(spec, batch_size=batch_size),
            sampling=sampling_for(spec, sampling),
            seed=seed,
            instruction_column=instruction_column,
            input_column=input_column,
            output_column=spec.label,
            skip_unless=None,
        )
        batch = 64 if spec.kind == "endpoint" else max(batch_size, 1)
        ds = respond.map(ds, batch_size=batch, desc=f"Answering with {spec.label}")
    return ds


@dataclass(frozen=True)
class Coverage:
    """Which rows every generator answered."""

    rows: list[int]
    """Row indices compared (answered by every generator)."""
    missing: dict[str, int]
    """Per generator: rows without a usable response."""
    total: int


def check_responses(ds: Any, specs: Sequence[GeneratorSpec], *, allow_missing: bool = False) -> Coverage:
    """Find the rows every generator answered.

    A response is missing when it is None or empty, or when its ``<label>_status`` column
    says the generation failed (``failed``, ``invalid_input``, ``skipped``). A response
    cut at ``max_new_tokens`` (``truncated``) counts as a response.

    Raises:
        DataError: a generator misses rows and ``allow_missing`` is False (the message
            says how many, per generator), or no row is answered by every generator.
    """
    missing: dict[str, int] = {}
    ok = [True] * len(ds)
    first_bad: dict[str, list[int]] = {}
    for spec in specs:
        column = spec.target if spec.kind == "column" else spec.label
        values = ds[column]
        statuses = ds[f"{column}_status"] if f"{column}_status" in ds.column_names else [None] * len(ds)
        bad = [i for i, (v, s) in enumerate(zip(values, statuses)) if text_problem(v) is not None or s in ("failed", "invalid_input", "skipped")]
        missing[spec.label] = len(bad)
        first_bad[spec.label] = bad[:5]
        for i in bad:
            ok[i] = False
    short = {label: n for label, n in missing.items() if n}
    if short and not allow_missing:
        detail = "; ".join(f"{label}: {n} of {len(ds)} rows (e.g. rows {', '.join(map(str, first_bad[label]))})" for label, n in short.items())
        raise DataError(
            f"some generators have no usable response for some rows: {detail}",
            hint="fix or regenerate those rows, or pass allow_missing=True (--allow-missing) to compare only the rows every generator answered.",
        )
    rows = [i for i, good in enumerate(ok) if good]
    if not rows:
        raise DataError("no row has a usable response from every generator, so nothing can be compared")
    return Coverage(rows=rows, missing=missing, total=len(ds))
