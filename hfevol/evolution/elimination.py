"""Catch failed evolutions: small rules, each with a reason code, applied after a round.

WizardLM's Evol-Instruct drops an evolution that gained no information, that the model
refused, that leaks the template's words, or that is too short; the smaller-evolver paper's
code has no such step (FIELD_NOTES §1.1). hfevol applies these rules by default and
*marks* rather than drops: an eliminated row keeps its text, gets ``evol_status =
"eliminated"``, the rule's code in ``elimination_rule`` and a one-line detail in
``evol_reason``. Only an explicit filter (``ds.filter(lambda r: r["evol_status"] == "ok")``)
removes it.

The rules run in this order and the first that fires names the row:

``too_short``
    Fewer than ``min_words`` words (``\\w+`` runs), or fewer than ``min_length_ratio`` times
    the parent's word count. An evolution should grow the prompt, or (breadth) keep its size.
``refusal``
    The reply opens like a refusal ("I'm sorry", "I cannot", "As an AI ...") or says "as an
    AI language model" anywhere. Only the opening is checked, because an instruction may
    well contain "I cannot" ("Explain why I cannot divide by zero").
``template_echo``
    The reply contains one of :data:`TEMPLATE_MARKERS` (case-insensitive): the paper-era
    labels ("#Rewritten Prompt#", "Given Prompt"), the labels and phrases of hfevol's own
    templates ("Original prompt", "new prompt", "Final rewrite"), or any ``#Label#``.
``near_duplicate``
    The reply adds fewer than ``min_new_words`` words to the parent. Words are aligned with
    :class:`difflib.SequenceMatcher` over lower-cased ``\\w+`` tokens; the words outside the
    matched blocks are the new ones. The detail also gives the similarity ``2·M / (|a|+|b|)``
    (M = matched words). A word count rather than a ratio threshold, because the paper's
    rewrites add 10 to 20 words, which is a small fraction of a long math problem.
``not_instruction``
    A conservative guess that the model *answered* the parent rather than rewriting it:

    - the reply opens with answer chatter ("Sure", "Certainly", "Of course", "Answer:",
      "Solution:") or a sentence starting "The answer";
    - or the assistant speaks as itself: it opens with "I'm ready to help", "I'd be happy
      to", "I'm a helpful AI", or offers help anywhere ("How can I assist you?", "I'm here
      to help", "go ahead and provide ...") where the parent did not;
    - or it has a GSM8K-style answer line (``#### 42``);
    - or its first line is code (``def``, ``import``, ``class``, ``#include``, a fence, an
      SQL statement);
    - or, with fenced code removed, it has no sign of a request at all: no ``?``, no
      "please", no sentence that starts with a question word ("how", "what", "can", "is" ...),
      and no sentence or clause that starts with a request word (an imperative such as
      "explain", "write", "calculate", or "you"/"your"/"given"; :data:`IMPERATIVES`; after a
      comma, "using", "given", "suppose" and "assume" do not count).

    *Limits*: a task stated without a question mark or a listed verb is flagged ("A train
    travels 60 km in 45 minutes; its speed in km/h."); an answer that contains a question or
    a sentence starting with a listed word passes ("Consider the sum: ..."). It never reads
    the model's meaning, only surface form.

Turn elimination off with ``evolve_rounds(..., elimination=None)`` or ``--no-elimination``;
turn single rules off with ``Elimination(rules=(...))``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..transform import Batch

RULES: tuple[str, ...] = ("too_short", "refusal", "template_echo", "near_duplicate", "not_instruction")
"""Every rule's reason code, in the order they are checked."""

TEMPLATE_MARKERS: tuple[str, ...] = (
    # labels of the original Evol-Instruct prompts, which models have seen in training data
    "#rewritten prompt#",
    "#given prompt#",
    "#created prompt#",
    "rewritten prompt",
    "given prompt",
    "created prompt",
    # labels and phrases of hfevol's own templates (prompts/evol_instruct, prompts/auto_evol)
    "original prompt",
    "new prompt",
    "inspiration prompt",
    "practice prompt",
    "rewritten instruction",
    "complexity methods",
    "first rewrite",
    "final rewrite",
)
"""Lower-case phrases whose presence in a rewrite means the model echoed a template."""

_HASH_LABEL = re.compile(r"#[A-Za-z][A-Za-z ]{2,40}#")
_WORD = re.compile(r"\w+")
_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LEAD = re.compile(r"^[\s\"'`*_>#-]+")  # quotes, markdown and bullets before the first word

_REFUSAL_OPENING = re.compile(
    r"^(?:i'?m sorry|i am sorry|sorry\b|my apologies|apologies\b|i apologi[sz]e|i'?m afraid|i am afraid"
    r"|i (?:cannot|can't|can not|won't|will not|am unable|am not able|'m unable|'m not able|do not feel|don't feel)"
    r"|i'?m unable|i'?m not able|unfortunately,? i\b|as an ai\b|as a language model)",
    re.I,
)
_REFUSAL_ANYWHERE = re.compile(r"\bas an ai(?: language)? model\b|\bas a large language model\b", re.I)

_ANSWER_OPENING = re.compile(
    r"^(?:sure\b|certainly\b|of course\b|absolutely\b|great question|answer\s*:|solution\s*:|response\s*:|output\s*:"
    # the assistant speaking as itself, instead of writing the user's request
    r"|i'?m (?:here|ready|happy|glad|delighted) to (?:help|assist)|i am (?:here|ready|happy|glad) to (?:help|assist)"
    r"|i(?:'d| would) (?:be happy|be glad|love) to\b|i'?m (?:a|an|your) (?:helpful |friendly )?(?:ai\b|assistant))",
    re.I,
)
_ASSISTANT_OFFER = re.compile(
    r"\bhow (?:can|may) i (?:help|assist) you\b|\bwhat can i (?:help|assist) you with\b"
    r"|\bi'?m (?:here|ready) to help\b|\bgo ahead and (?:provide|share|send|give)\b",
    re.I,
)
_ANSWER_SENTENCE = re.compile(r"(?:^|[.!?]\s+|\n\s*)the (?:final |correct )?answer\b|^\s*####", re.I | re.M)
_CODE_FIRST_LINE = re.compile(
    r"^(?:```|def |class |import |from \S+ import |#include|function\s*\w*\(|public |<\?|<html"
    r"|SELECT |INSERT INTO |UPDATE \w+ SET |DELETE FROM |CREATE (?:TABLE|VIEW|INDEX) |WITH \w+ AS )",
    re.I,
)

IMPERATIVES: frozenset[str] = frozenset(
    """
    explain describe write list give provide create generate compose draft design develop build implement
    calculate compute find determine solve evaluate estimate compare contrast analyze analyse summarize summarise
    classify identify name suggest recommend propose outline discuss define translate rewrite convert edit fix
    correct debug improve optimize optimise refactor sort rank plan prove show derive predict tell make construct
    formulate assess justify argue illustrate demonstrate detail elaborate categorize categorise rate review critique
    count choose select decide imagine consider brainstorm paraphrase extract complete fill answer state use apply
    modify add remove replace check verify test validate format organize organise arrange express highlight
    interpret investigate examine explore research reflect simulate plot draw sketch produce prepare figure work
    help please let you your given using suppose assume
    """.split()
)
"""Words that mark a request at the start of a sentence or of a clause (imperatives, "you", "given")."""

_CLAUSE_IMPERATIVES = IMPERATIVES - {"using", "given", "suppose", "assume"}
"""After a comma these open a participle or a condition ("..., using a smart thermostat"), not a request."""

QUESTION_WORDS: frozenset[str] = frozenset(
    "how what why when where which who whom whose can could would will should may might shall is are does do did".split()
)
"""Words that mark a question at the start of a sentence only (after a comma they start relative clauses)."""

_SENTENCE_SPLIT = re.compile(r"[.!?:;\n]+")
_CLAUSE_SPLIT = re.compile(r",|\s+-\s+|\(|\)")


@dataclass
class Elimination:
    """Mark failed evolutions: ``ds.map(Elimination(), batched=True)`` after an evolution round.

    Only rows whose ``evol_status`` is ``ok`` are checked; the others keep their status.
    The rules and their limits are in the module docstring.

    Input columns:
        - ``evolved_instruction``, ``parent_instruction``, ``evol_status``, ``evol_reason``.

    Output columns:
        - ``evol_status``: ``eliminated`` where a rule fired, otherwise unchanged.
        - ``evol_reason``: ``"<rule>: <detail>"`` where a rule fired, otherwise unchanged.
        - ``elimination_rule`` (str | None): the code of the rule that fired.

    Raises:
        ConfigError: an unknown rule name or a bad threshold.
        MissingColumnError: one of the input columns is absent.
    """

    rules: tuple[str, ...] = RULES
    min_words: int = 3
    min_length_ratio: float = 0.3
    min_new_words: int = 3
    markers: tuple[str, ...] = TEMPLATE_MARKERS

    def __post_init__(self) -> None:
        if isinstance(self.rules, str):
            self.rules = (self.rules,)
        self.rules = tuple(self.rules)
        unknown = [r for r in self.rules if r not in RULES]
        if unknown:
            raise ConfigError(f"unknown elimination rule(s) {unknown}", hint=f"known rules: {', '.join(RULES)}.")
        self.markers = tuple(m.lower() for m in self.markers)
        if not isinstance(self.min_words, int) or self.min_words < 0:
            raise ConfigError(f"min_words={self.min_words!r} must be an integer >= 0")
        if not isinstance(self.min_new_words, int) or self.min_new_words < 0:
            raise ConfigError(f"min_new_words={self.min_new_words!r} must be an integer >= 0")
        if not (isinstance(self.min_length_ratio, (int, float)) and 0 <= self.min_length_ratio <= 1):
            raise ConfigError(f"min_length_ratio={self.min_length_ratio!r} must be in [0, 1]")

    def check(self, text: str, parent: str) -> tuple[str, str] | None:
        """The first rule that eliminates ``text`` (evolved from ``parent``), as ``(code, detail)``, or None."""
        for rule in RULES:
            if rule in self.rules:
                detail = _CHECKS[rule](self, text, parent)
                if detail is not None:
                    return rule, detail
        return None

    def __call__(self, batch: Batch) -> Batch:
        from ..validation import require_columns

        require_columns(batch, "evolved_instruction", "parent_instruction", "evol_status", "evol_reason")
        status, reason = list(batch["evol_status"]), list(batch["evol_reason"])
        rule_column: list[str | None] = [None] * len(status)
        for j, (text, parent) in enumerate(zip(batch["evolved_instruction"], batch["parent_instruction"])):
            if status[j] != "ok":
                continue
            hit = self.check(text or "", parent or "")
            if hit is not None:
                rule_column[j] = hit[0]
                status[j], reason[j] = "eliminated", f"{hit[0]}: {hit[1]}"
        return {"evol_status": status, "evol_reason": reason, "elimination_rule": rule_column}

    def output_features(self) -> dict[str, Any]:
        from datasets import Value

        return {name: Value("string") for name in ("evol_status", "evol_reason", "elimination_rule")}

    def metadata(self) -> dict[str, Any]:
        """The rules and their thresholds, in the run record's stage shape (no model: backend kind ``none``)."""
        from ..record import StageRecord

        return StageRecord.describe(
            "elimination",
            rules=list(self.rules),
            min_words=self.min_words,
            min_length_ratio=self.min_length_ratio,
            min_new_words=self.min_new_words,
            markers=list(self.markers),
        )


# -- the rules: each returns a one-line detail when it eliminates, else None ----------------


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _too_short(self: Elimination, text: str, parent: str) -> str | None:
    n = len(_words(text))
    if n < self.min_words:
        return "empty" if n == 0 else f"{n} word(s), fewer than {self.min_words}"
    parent_n = len(_words(parent))
    if parent_n and n < self.min_length_ratio * parent_n:
        return f"{n} words against the parent's {parent_n} (less than {self.min_length_ratio:g} of it)"
    return None


def _opening(text: str) -> str:
    return _LEAD.sub("", text.strip())


def _refusal(self: Elimination, text: str, parent: str) -> str | None:
    m = _REFUSAL_OPENING.match(_opening(text)) or _REFUSAL_ANYWHERE.search(text)
    return f"refusal phrase {m.group(0)!r}" if m else None


def _template_echo(self: Elimination, text: str, parent: str) -> str | None:
    lowered = text.lower()
    for marker in self.markers:
        if marker in lowered and marker not in parent.lower():
            return f"contains the template marker {marker!r}"
    m = _HASH_LABEL.search(text)
    if m and m.group(0) not in parent:
        return f"contains the template label {m.group(0)!r}"
    return None


def _near_duplicate(self: Elimination, text: str, parent: str) -> str | None:
    a, b = _words(parent), _words(text)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    new = len(b) - matched
    if new >= self.min_new_words:
        return None
    similarity = 2 * matched / max(len(a) + len(b), 1)
    if a == b:
        return "the parent, unchanged"
    return f"adds {new} new word(s), fewer than {self.min_new_words} (word similarity {similarity:.2f})"


def has_request(text: str) -> bool:
    """Whether ``text`` (code removed) shows any sign of asking for something; see the module docstring."""
    prose = _INLINE_CODE.sub(" ", _FENCE.sub(" ", text))
    if "?" in prose or re.search(r"\bplease\b", prose, re.I):
        return True
    for sentence in _SENTENCE_SPLIT.split(prose):
        words = _words(_opening(sentence))
        if words and (words[0] in QUESTION_WORDS or words[0] in IMPERATIVES):
            return True
        for clause in _CLAUSE_SPLIT.split(sentence)[1:]:
            words = _words(_opening(clause))
            if words and words[0] in _CLAUSE_IMPERATIVES:
                return True
    return False


def _not_instruction(self: Elimination, text: str, parent: str) -> str | None:
    opening = _opening(text)
    m = _ANSWER_OPENING.match(opening)
    if m:
        return f"opens like an answer ({m.group(0)!r})"
    if _ANSWER_SENTENCE.search(text) and not _ANSWER_SENTENCE.search(parent):
        return "states an answer ('the answer ...', or a '####' answer line)"
    m = _ASSISTANT_OFFER.search(text)
    if m and not _ASSISTANT_OFFER.search(parent):
        return f"the assistant offering help ({m.group(0)!r})"
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    if _CODE_FIRST_LINE.match(first_line.strip()):
        return "starts with code, not a request"
    if not has_request(text):
        return "no question mark, 'please' or request word: reads as a statement, not a request"
    return None


_CHECKS: dict[str, Callable[[Elimination, str, str], str | None]] = {
    "too_short": _too_short,
    "refusal": _refusal,
    "template_echo": _template_echo,
    "near_duplicate": _near_duplicate,
    "not_instruction": _not_instruction,
}
