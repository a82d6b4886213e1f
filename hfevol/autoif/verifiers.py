"""AutoIF step 2: model-written verifiers (``evaluate(response) -> bool`` plus test cases), read leniently and safely.

A reply should be one JSON object ``{"func": "...", "cases": [{"input": ..., "output": ...}]}``.
Models get it slightly wrong in a few known ways (see the research notes), and each is
tolerated by :func:`parse_verifier_reply`: the object fenced or bare, surrounded by prose;
raw newlines inside strings; Python literals (``True``, single quotes, ``\\'``) read through
:func:`ast.literal_eval`, never ``eval``; expected outputs given as ``"true"``/``"false"``
strings. Any other shape is a *reason*, never an exception. Nothing here runs the code.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import prompts
from ..backends.base import Backend, GenerationRequest, GenerationResult, SamplingParams
from ..backends.local import TransformersBackend
from ..errors import ConfigError
from ..seeding import row_seed
from ..transform import Batch, GenerationTransform, Prepared, outcome
from ..validation import require_columns, text_problem

TEMPLATE = "autoif/verifier"
MAX_REPLY_CHARS = 100_000
"""Longer replies are not parsed (a guard for the literal parser, whose cost grows with nesting)."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_ENTRY = re.compile(r"^\s*def\s+evaluate\s*\(", re.MULTILINE)
_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


@dataclass(frozen=True)
class ParsedVerifier:
    """What one reply holds: the function source, the usable test cases, and what was wrong."""

    func: str | None
    cases: tuple[tuple[str, bool], ...] = ()
    problem: str | None = None
    """Why there is no usable function (None when there is one)."""
    dropped_cases: tuple[str, ...] = ()
    """One reason per test case that could not be used."""


def parse_verifier_reply(text: str | None) -> ParsedVerifier:
    """Read ``{"func", "cases"}`` from a model reply; never raises, never runs code."""
    if not text or not text.strip():
        return ParsedVerifier(None, problem="the reply is empty")
    if len(text) > MAX_REPLY_CHARS:
        return ParsedVerifier(None, problem=f"the reply is longer than {MAX_REPLY_CHARS} characters")
    obj, problem = _first_object(text)
    if obj is None:
        return ParsedVerifier(None, problem=problem)
    func, func_problem = _read_func(obj)
    cases, dropped = _read_cases(obj)
    return ParsedVerifier(func, tuple(cases), func_problem, tuple(dropped))


def _candidates(text: str) -> list[str]:
    """Fenced blocks (json ones first), then the whole text, then the span from the first '{' to the last '}'."""
    fenced = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    out = [body for lang, body in fenced if lang == "json"] + [body for lang, body in fenced if lang != "json"]
    out.append(text)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        out.append(text[start : end + 1])
    return out


def _first_object(text: str) -> tuple[Any, str]:
    shapes = []
    for candidate in _candidates(text):
        value = load_lenient(candidate.strip())
        if value is _NOTHING:
            continue
        if isinstance(value, dict):
            return value, ""
        shapes.append(type(value).__name__)
    if shapes:
        return None, f"the reply holds a JSON {shapes[0]}, not an object with 'func' and 'cases'"
    return None, "no JSON object could be read from the reply"


_NOTHING = object()


def load_lenient(text: str) -> Any:
    """A JSON (or Python-literal) value, or :data:`_NOTHING`: strict-less JSON, then literals, then both with raw newlines escaped."""
    if not text:
        return _NOTHING
    try:
        return json.loads(text, strict=False)  # strict=False: raw control characters inside strings
    except (ValueError, RecursionError):
        pass
    for attempt in (text, _escape_raw_newlines(text)):
        value = _literal(attempt)
        if value is not _NOTHING:
            return value
    return _NOTHING


def _literal(text: str) -> Any:
    """``ast.literal_eval`` that also accepts JSON's ``true``/``false``/``null``; never evaluates code."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _NOTHING

    class _Names(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id in _LITERAL_NAMES:
                return ast.copy_location(ast.Constant(_LITERAL_NAMES[node.id]), node)
            return node

    try:
        return ast.literal_eval(_Names().visit(tree))
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return _NOTHING


def _escape_raw_newlines(text: str) -> str:
    """Newlines inside quoted strings become ``\\n`` (a newline is legal between tokens, never inside a string)."""
    out, quote, escaped = [], None, False
    for ch in text:
        if quote is None:
            if ch in "\"'":
                quote = ch
            out.append(ch)
            continue
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == quote:
            quote = None
        elif ch == "\n":
            out.append("\\n")
            continue
        elif ch == "\r":
            continue
        out.append(ch)
    return "".join(out)


def _read_func(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    func = obj.get("func", obj.get("function"))
    if func is None:
        return None, f"the object has no 'func' (keys: {', '.join(map(str, list(obj)[:6])) or 'none'})"
    if not isinstance(func, str):
        return None, f"'func' is a {type(func).__name__}, not a string of Python code"
    func = func.strip()
    fence = _FENCE.search(func + ("\n" if func.startswith("```") and not func.endswith("\n") else ""))
    if func.startswith("```") and fence:
        func = fence.group(2).strip()
    if "\n" not in func and "\\n" in func:  # the newlines were escaped twice
        func = func.replace("\\n", "\n").replace("\\t", "\t")
    if not func:
        return None, "'func' is empty"
    if not _ENTRY.search(func):
        return None, "'func' defines no function named evaluate"
    return func, None


def expected_bool(value: Any) -> bool | None:
    """A test case's expected output as a bool: a real bool, or the string true/false in any case; else None (``1`` is not ``True``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _read_cases(obj: dict[str, Any]) -> tuple[list[tuple[str, bool]], list[str]]:
    raw = obj.get("cases", obj.get("test_cases"))
    if raw is None:
        return [], ["the object has no 'cases'"]
    if not isinstance(raw, list):
        return [], [f"'cases' is a {type(raw).__name__}, not a list"]
    cases, dropped = [], []
    for k, case in enumerate(raw):
        if isinstance(case, dict):
            given, expected = case.get("input"), case.get("output")
        elif isinstance(case, (list, tuple)) and len(case) == 2:
            given, expected = case
        else:
            dropped.append(f"case {k} is a {type(case).__name__}, not an object with 'input' and 'output'")
            continue
        verdict = expected_bool(expected)
        if not isinstance(given, str):
            dropped.append(f"case {k}: 'input' is a {type(given).__name__}, not a string")
        elif verdict is None:
            dropped.append(f"case {k}: 'output' {expected!r:.40} is not true or false")
        else:
            cases.append((given, verdict))
    return cases, dropped


def dedup_functions(sources: list[str | None]) -> list[int | None]:
    """For each source, the index of an earlier identical one (stripped text), or None when it is the first."""
    first: dict[str, int] = {}
    out: list[int | None] = []
    for k, src in enumerate(sources):
        if src is None:
            out.append(None)
            continue
        key = src.strip()
        out.append(first.get(key))
        first.setdefault(key, k)
    return out


def dedup_cases(cases: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """The cases in first-seen order, each (input, output) once (order-stable, never set-ordered)."""
    seen: set[tuple[str, bool]] = set()
    out = []
    for case in cases:
        if case not in seen:
            seen.add(case)
            out.append(case)
    return out


@dataclass
class VerifierWriter(GenerationTransform):
    """One verifier sample per row: ``ds.map(writer, batched=True)`` over (constraint, sample) rows.

    Input columns: ``constraint_id`` (str), ``constraint`` (str), ``verifier_sample`` (int).

    Output columns:
        - ``verifier_id`` (str): ``<constraint_id>-v<sample>``.
        - ``verifier_reply`` (str | None): the model's text.
        - ``verifier_func`` (str | None): the function source, when one could be read.
        - ``verifier_cases`` (list of {input: str, output: bool}): the usable test cases.
        - ``verifier_dropped_cases`` (list[str]): why each other case was not usable.
        - ``verifier_seed`` (int).
        - ``verifier_status`` (str): ``ok``, ``truncated``, ``failed``, ``parse_failed``, ``invalid_input``.
        - ``verifier_reason`` (str | None).
    """

    backend: Backend = field(default_factory=TransformersBackend)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    seed: int = 0
    on_invalid: Literal["mark", "raise"] = "mark"

    stage = "autoif_verifiers"

    def __post_init__(self) -> None:
        if not isinstance(self.sampling, SamplingParams):
            raise ConfigError(f"sampling must be a SamplingParams, got {type(self.sampling).__name__}")
        self._check_backend()

    def prompt_templates(self) -> tuple[str, ...]:
        return (TEMPLATE,)

    def metadata(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "backend": self.backend.describe(),
            "sampling": self.sampling.to_dict(),
            "seed": self.seed,
            "prompt_versions": {"verifier": prompts.version(TEMPLATE)},
        }

    def output_features(self) -> dict[str, Any]:
        from datasets import List, Value

        return {
            "verifier_id": Value("string"),
            "verifier_reply": Value("string"),
            "verifier_func": Value("string"),
            "verifier_cases": List({"input": Value("string"), "output": Value("bool")}),
            "verifier_dropped_cases": List(Value("string")),
            "verifier_seed": Value("int64"),
            "verifier_status": Value("string"),
            "verifier_reason": Value("string"),
        }

    def prepare(self, batch: Batch, indices: list[int] | None) -> Prepared:
        require_columns(batch, "constraint_id", "constraint", "verifier_sample")
        n = len(batch["constraint_id"])
        out: Batch = {c: [None] * n for c in self.output_features()}
        prepared = Prepared(out=out, rows=[], requests=[])
        for j, (cid, text, sample) in enumerate(zip(batch["constraint_id"], batch["constraint"], batch["verifier_sample"])):
            out["verifier_id"][j] = f"{cid}-v{int(sample)}"
            out["verifier_seed"][j] = seed = row_seed(self.seed, self.stage, cid, int(sample))
            out["verifier_cases"][j] = []
            out["verifier_dropped_cases"][j] = []
            problem = text_problem(text)
            if problem is not None:
                out["verifier_status"][j] = "invalid_input"
                out["verifier_reason"][j] = f"column 'constraint': {problem}"
                continue
            prepared.rows.append(j)
            prepared.requests.append(GenerationRequest.chat(prompts.render(TEMPLATE, constraint=text), params=self.sampling, seed=seed))
        return prepared

    def apply(self, out: Batch, row: int, result: GenerationResult) -> None:
        text = result.text if result.ok else None
        parsed = parse_verifier_reply(text) if text and text.strip() else ParsedVerifier(None)
        status, reason = outcome(result, (text or "").strip(), self.sampling.max_new_tokens, parsed.problem if text and text.strip() else None)
        out["verifier_reply"][row] = text or None
        out["verifier_func"][row] = parsed.func
        out["verifier_cases"][row] = [{"input": i, "output": o} for i, o in parsed.cases]
        out["verifier_dropped_cases"][row] = list(parsed.dropped_cases)
        out["verifier_status"][row] = status
        out["verifier_reason"][row] = reason
