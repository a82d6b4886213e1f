"""AutoIF step 1: seed constraints, self-instructed new ones, and the robust reading of the model's list.

The reference sends one prompt (every seed as an example) K times at temperature 0.7 and
keeps every line of every reply. Here each reply is read line by line
(:func:`parse_constraint_lines`): preambles, headings, numbering, bullets, blank lines and
code fences are dropped; the constraints are then deduplicated on normalised text
(:func:`normalise_constraint`), seeds first, and every duplicate stays in the table with
its reason (:func:`collect_constraints`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import prompts
from ..backends.base import Backend, GenerationRequest, GenerationResult, SamplingParams
from ..backends.local import TransformersBackend
from ..errors import ConfigError, DataError
from ..paths import package_file
from ..seeding import row_seed
from ..transform import Batch, GenerationTransform, Prepared, outcome
from ..validation import check_int

TEMPLATE = "autoif/constraints"
SEED_FILE = ("data", "autoif_seed_constraints.txt")
MIN_CHARS, MAX_CHARS = 10, 300
"""A parsed line shorter or longer than this is not taken as a constraint."""

_BULLET = re.compile(r"^\s*(?:[-*•·–]+|\(?\d{1,3}[.)\]:]|\(?[a-zA-Z][.)]\s|#+)\s*")
_CHATTER = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|here (?:are|is)|below (?:are|is)|these (?:are|instructions)|i hope|i have|"
    r"note\b|let me know|feel free|new instructions|instructions?:|examples?:|as an? )",
    re.IGNORECASE,
)


def seed_constraint_file() -> Path:
    """The project's seed constraints (about 36, covering IFEval's categories, in our own words)."""
    return package_file(*SEED_FILE)


def load_seed_constraints(path: str | Path | None = None) -> list[str]:
    """The constraints of a text file, one per line (``#`` comments and blank lines skipped), in order, deduplicated.

    Raises:
        DataError: the file cannot be read or holds no constraint.
    """
    where = Path(path) if path is not None else seed_constraint_file()
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"seed constraint file {str(where)!r} cannot be read: {exc}", hint="give a UTF-8 text file, one constraint per line.") from exc
    seen: set[str] = set()
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key = normalise_constraint(line)
        if key and key not in seen:
            seen.add(key)
            out.append(line)
    if not out:
        raise DataError(f"seed constraint file {str(where)!r} holds no constraint", hint="write one constraint per line; lines starting with '#' are comments.")
    return out


def normalise_constraint(text: str) -> str:
    """The key two constraints are duplicates on: lowercase, one space between words, quotes unified, no final punctuation."""
    text = text.replace("“", '"').replace("”", '"').replace("‘", "'").replace("’", "'")
    text = " ".join(text.lower().split())
    return text.rstrip(" .!;")


def parse_constraint_lines(text: str | None) -> tuple[list[str], int]:
    """The constraints in one reply, and how many non-blank lines were dropped.

    A line is kept once its bullet or number is removed (``- ``, ``* ``, ``3.``, ``(2)``,
    ``a)``, ``#``) and surrounding quotes or bold marks are stripped, unless it is a code fence,
    a heading (ends with ``:``), chatter (``Sure, here are ...``), or shorter than
    :data:`MIN_CHARS` / longer than :data:`MAX_CHARS` characters.
    """
    kept: list[str] = []
    dropped = 0
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("```"):
            dropped += 1
            continue
        line = _BULLET.sub("", line, count=1).strip()
        line = _strip_wrappers(line)
        if not line or line.endswith(":") or _CHATTER.match(line) or not (MIN_CHARS <= len(line) <= MAX_CHARS) or len(line.split()) < 3:
            dropped += 1
            continue
        kept.append(line)
    return kept, dropped


def _strip_wrappers(line: str) -> str:
    for mark in ("**", "__", "`"):
        if len(line) > 2 * len(mark) and line.startswith(mark) and line.endswith(mark):
            line = line[len(mark) : -len(mark)].strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        inner = line[1:-1]
        if line[0] not in inner:  # a quote around the whole line, not one inside it
            line = inner.strip()
    return line


@dataclass
class ConstraintWriter(GenerationTransform):
    """Self-instruct new constraints: one row per sample of the same prompt (``ds.map(writer, batched=True)``).

    Every row gets the prompt ``prompts/autoif/constraints.jinja`` with all the seeds as
    examples, sampled with its own seed (``row_seed(seed, "autoif_constraints", sample)``).

    Input columns:
        - ``sample`` (int): the sample number (0 to K-1).

    Output columns:
        - ``constraint_reply`` (str | None): the model's text.
        - ``constraint_lines`` (list[str]): the constraints read from it (:func:`parse_constraint_lines`).
        - ``constraint_dropped_lines`` (int): non-blank lines that were not constraints.
        - ``constraint_seed`` (int): the sample's seed.
        - ``constraint_status`` (str): ``ok``, ``truncated``, ``failed``, ``parse_failed`` (no constraint in the reply).
        - ``constraint_reason`` (str | None): why the status is not ``ok``.
    """

    backend: Backend = field(default_factory=TransformersBackend)
    seeds: tuple[str, ...] = ()
    count: int = 50
    sampling: SamplingParams = field(default_factory=SamplingParams)
    seed: int = 0
    on_invalid: Literal["mark", "raise"] = "mark"

    stage = "autoif_constraints"

    def __post_init__(self) -> None:
        self.seeds = tuple(self.seeds)
        if not self.seeds or not all(isinstance(s, str) and s.strip() for s in self.seeds):
            raise ConfigError("seeds must be a non-empty list of constraint texts")
        check_int("count", self.count)
        self.check_settings()

    def input_columns(self) -> tuple[str, ...]:
        return ("sample",)

    def prompt_templates(self) -> tuple[str, ...]:
        return (TEMPLATE,)

    def stage_settings(self) -> dict[str, Any]:
        return {"seed_constraints": len(self.seeds), "count": self.count}

    def output_features(self) -> dict[str, Any]:
        from datasets import List, Value

        return {
            "constraint_reply": Value("string"),
            "constraint_lines": List(Value("string")),
            "constraint_dropped_lines": Value("int64"),
            "constraint_seed": Value("int64"),
            "constraint_status": Value("string"),
            "constraint_reason": Value("string"),
        }

    def prepare(self, batch: Batch, indices: list[int] | None) -> Prepared:
        self.check_columns(batch)
        n = len(batch["sample"])
        prompt = prompts.render(TEMPLATE, seeds=list(self.seeds), count=self.count)
        prepared = self.start(n)
        out = prepared.out
        for j, sample in enumerate(batch["sample"]):
            seed = row_seed(self.seed, self.stage, int(sample))
            out["constraint_seed"][j] = seed
            out["constraint_lines"][j] = []
            out["constraint_dropped_lines"][j] = 0
            prepared.rows.append(j)
            prepared.requests.append(GenerationRequest.chat(prompt, params=self.sampling, seed=seed))
        return prepared

    def apply(self, out: Batch, row: int, result: GenerationResult) -> None:
        text = (result.text or "").strip() if result.ok else None
        lines, dropped = parse_constraint_lines(text)
        problem = None if lines or not text else f"no constraint line in the reply ({dropped} line(s) dropped)"
        status, reason = outcome(result, text, self.sampling.max_new_tokens, problem)
        out["constraint_reply"][row] = text or None
        out["constraint_lines"][row] = lines
        out["constraint_dropped_lines"][row] = dropped
        out["constraint_status"][row] = status
        out["constraint_reason"][row] = reason


def collect_constraints(seeds: list[str], samples: list[dict[str, Any]], *, keep_seeds: bool = True) -> list[dict[str, Any]]:
    """One row per constraint: the seeds first, then each sample's lines in order, duplicates marked.

    ``samples`` are the rows :class:`ConstraintWriter` wrote. Each output row has
    ``constraint_id`` (``c0000``, ...), ``constraint``, ``origin`` (``seed`` or
    ``generated``), ``source_sample`` (None for a seed), ``constraint_status`` (``ok`` or
    ``duplicate``) and ``constraint_reason`` (which constraint it repeats).
    """
    rows: list[dict[str, Any]] = []
    first: dict[str, str] = {}

    def add(text: str, origin: str, sample: int | None) -> None:
        cid = f"c{len(rows):04d}"
        key = normalise_constraint(text)
        twin = first.get(key)
        if twin is None:
            first[key] = cid
        rows.append(
            {
                "constraint_id": cid,
                "constraint": text,
                "origin": origin,
                "source_sample": sample,
                "constraint_status": "ok" if twin is None else "duplicate",
                "constraint_reason": None if twin is None else f"same constraint as {twin}",
            }
        )

    if keep_seeds:
        for text in seeds:
            add(text, "seed", None)
    else:
        for text in seeds:  # not kept, but a generated copy of a seed is still a duplicate
            first.setdefault(normalise_constraint(text), "a seed")
    for sample in samples:
        for text in sample.get("constraint_lines") or []:
            add(text, "generated", int(sample["sample"]))
    return rows
