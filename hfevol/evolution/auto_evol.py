"""Auto Evol-Instruct: the model chooses its own ways to make an instruction harder.

One prompt (``prompts/auto_evol/rewrite.jinja``) asks for four parts, in order: a list of
methods, a plan that combines some of them, a first rewrite, and a reviewed final rewrite
(FIELD_NOTES §1.1). :func:`parse_auto_evol` reads them back; the final rewrite becomes the
evolved instruction and the method list (the row's "trajectory") is kept in
``evol_methods`` for output-space analysis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import prompts
from ..transform import Batch
from .base import Evolver

OPERATION = "auto_evol"
TEMPLATE = "auto_evol/rewrite"

# Heading names a model may use for each part, longest first so that "final rewrite" wins
# over "rewrite". Numbered headings ("Step 4") are understood without a name.
_NAMES: dict[str, tuple[str, ...]] = {
    "final": (
        "finally rewritten instruction",
        "final rewritten instruction",
        "final rewritten prompt",
        "reviewed final rewrite",
        "final rewrite",
        "final instruction",
        "final version",
        "final prompt",
        "reviewed rewrite",
        "revised instruction",
        "revised rewrite",
        "final",
    ),
    "draft": ("first rewrite", "rewritten instruction", "rewritten prompt", "rewrite", "draft"),
    "plan": ("the plan", "plan"),
    "methods": ("complexity methods", "methods list", "method list", "list of methods", "methods", "method"),
    # the original instruction echoed back: a boundary, never a part
    "echo": ("original instruction", "instruction", "original prompt"),
}
_BY_NUMBER = {1: "methods", 2: "plan", 3: "draft", 4: "final"}
_NAME_RE = re.compile("|".join(f"(?P<{part}>(?:{'|'.join(re.escape(n) for n in names)})\\b)" for part, names in _NAMES.items()), re.I)
_STEP = re.compile(r"(?:step|part)\s*([1-4])\b\s*[-–—:.)]*\s*", re.I)
_NUMBERED = re.compile(r"([1-4])\s*[.):\-–—]\s*")
_MARKUP = "*_#> \t"
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+\s*[.)]|\(?[a-z]\)|\[\d+\])\s+", re.I)
_INLINE_NUMBERS = re.compile(r"\s(?=\d+[.)]\s)")
# paragraphs after the final rewrite that are the model talking about its work
_CHATTER = re.compile(
    r"^(?:note\b|explanation\b|changes?\b|i hope\b|i have\b|i've\b|let me know\b|feel free\b|in this\b|"
    r"this (?:rewrite|version|revised|final|instruction|prompt)\b|the (?:final|revised|rewritten|new) (?:rewrite|version|instruction|prompt)\b)",
    re.I,
)


@dataclass(frozen=True)
class AutoEvolParse:
    """The four parts read from one reply; ``problem`` says why the reply is unusable, if it is."""

    methods: list[str] = field(default_factory=list)
    plan: str | None = None
    draft: str | None = None
    final: str | None = None
    problem: str | None = None


def _heading(line: str) -> tuple[str, str] | None:
    """``(part, text after the heading)`` when ``line`` is a part heading, else None."""
    s = line.strip().lstrip(_MARKUP)
    number = None
    stepped = _STEP.match(s)
    m = stepped or _NUMBERED.match(s)
    if m:
        number = int(m.group(1))
        s = s[m.end() :].lstrip(_MARKUP)
    name = _NAME_RE.match(s)
    if name:
        part = name.lastgroup or ""
        rest = s[name.end() :].lstrip(_MARKUP)
        if rest[:1] in (":", "-", "–", "—", "."):
            return part, rest[1:].strip().strip("*_").strip()
        if not rest.strip("*_#: "):
            return part, ""
        return (part, rest.strip()) if stepped else None  # "Step 4 Final rewrite Write ...": colon missing
    if stepped and number is not None:
        return _BY_NUMBER[number], s.strip(":-–— ").strip()
    return None


def _split_methods(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) == 1:
        one = lines[0]
        if _INLINE_NUMBERS.search(" " + one):
            lines = [p for p in _INLINE_NUMBERS.split(" " + one) if p.strip()]
        elif ";" in one:
            lines = one.split(";")
    items = []
    for ln in lines:
        item = _BULLET.sub("", ln).strip().strip("*_").strip().rstrip(";")
        if item:
            items.append(item)
    return items


def _tidy(text: str) -> str:
    text = text.strip()
    for wrap in ("**", "__", '"', "'", "`", "“"):
        end = "”" if wrap == "“" else wrap
        if len(text) > 2 * len(wrap) and text.startswith(wrap) and text.endswith(end):
            text = text[len(wrap) : len(text) - len(end)].strip()
    return text


def _drop_chatter(text: str) -> str:
    paragraphs = re.split(r"\n\s*\n", text.strip())
    kept = [paragraphs[0]]
    for p in paragraphs[1:]:
        if _CHATTER.match(p.strip().lstrip(_MARKUP)):
            break
        kept.append(p)
    return "\n\n".join(kept).strip()


def parse_auto_evol(text: str) -> AutoEvolParse:
    """Read the methods, plan, first rewrite and final rewrite out of a reply.

    It accepts headings with or without "Step N", numbered ("4."), in markdown (``**Plan**``,
    ``### Plan``, ``#Plan#``), in any case, with or without the colon, with the text on the
    same line or below, and several names for each part ("Final rewrite", "Final
    instruction", "Finally rewritten instruction" ...). Text before the first heading, and
    paragraphs after the final rewrite that comment on it ("Note: ...", "This version ..."),
    are ignored. When a heading appears twice, the last one wins.

    Only the final rewrite is required: without it, ``problem`` says what is missing and the
    other parts are still returned. A missing method list gives ``methods == []``.
    """
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in (text or "").splitlines():
        head = _heading(line)
        if head is not None:
            current = head[0]
            sections[current] = [head[1]] if head[1] else []
        elif current is not None:
            sections[current].append(line)
    body = {part: "\n".join(lines).strip() for part, lines in sections.items()}
    methods = _split_methods(body.get("methods", ""))
    plan = body.get("plan") or None
    draft = _tidy(_drop_chatter(body["draft"])) if body.get("draft") else None
    if "final" not in body:
        found = [p for p in ("methods", "plan", "draft") if p in body]
        problem = "no final rewrite (step 4) found" + (f"; found: {', '.join(found)}" if found else "; no step headings at all")
        return AutoEvolParse(methods=methods, plan=plan, draft=draft, problem=problem)
    final = _tidy(_drop_chatter(body["final"]))
    if not final:
        return AutoEvolParse(methods=methods, plan=plan, draft=draft, problem="the final rewrite (step 4) is empty")
    return AutoEvolParse(methods=methods, plan=plan, draft=draft, final=final)


@dataclass
class AutoEvolInstruct(Evolver):
    """Auto Evol-Instruct as a map transform: ``ds.map(auto, batched=True)``.

    Every row gets the same prompt, which asks the model for its own methods, a plan, a
    first rewrite and a reviewed final rewrite; :func:`parse_auto_evol` reads them. A reply
    without a final rewrite gets ``evol_status = "parse_failed"``, never an exception. The
    four parts make replies long: give ``max_new_tokens`` room (512 or more).

    Input columns:
        - ``instruction_column`` (default ``instruction``): the text to evolve.
        - ``position_column`` (optional): the row's position for the seed.

    Output columns (every input column is kept unchanged): those of :class:`EvolInstruct`
    (``evol_operation`` is ``auto_evol``; ``evol_status`` may also be ``parse_failed``), and
        - ``evol_methods`` (list[str] | None): the methods the model listed (its trajectory).
        - ``evol_plan`` (str | None): the plan it wrote.

    Raises:
        ConfigError: a round below 1 or a bad option.
        MissingColumnError: the instruction column is absent.
        InvalidRowError: a row's instruction is unusable and ``on_invalid="raise"``.
    """

    stage = "auto_evol"

    def prompt_templates(self) -> tuple[str, ...]:
        return (TEMPLATE,)

    def stage_metadata(self) -> dict[str, Any]:
        return {"operations": [OPERATION]}

    def operation(self, position: int) -> str:
        return OPERATION

    def build_prompt(self, instruction: str, operation: str) -> str:
        return prompts.render(TEMPLATE, instruction=instruction)

    def extra_features(self) -> dict[str, Any]:
        from datasets import List, Value

        return {"evol_methods": List(Value("string")), "evol_plan": Value("string")}

    def read_reply(self, text: str, out: Batch, row: int) -> tuple[str | None, str | None]:
        parsed = parse_auto_evol(text)
        out["evol_methods"][row] = parsed.methods
        out["evol_plan"][row] = parsed.plan
        return parsed.final, parsed.problem
