"""Verifier quality against ground truth: model-written functions compared with IFEval's own checkers.

For constraints built from IFEval's instruction types (:func:`ifeval_constraints`, through each
checker's ``build_description``), the checker's ``check_following`` is a known-right verifier.
:func:`ifeval_agreement` runs every model-written function for a type in the sandbox on a set of
answers and reports, per type and per function, the share of answers on which its verdict equals
IFEval's. A function that errs or times out on an answer disagrees there.

The checkers come from the optional ``ifeval`` extra (``if-verifiable``, Python >= 3.11). IFEval
is an evaluation set of both papers: its constraints are for this check only, never training seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..sandbox import Sandbox

EXTRA = "ifeval"
MODULE = "if_verifiable"

DEFAULT_TYPES: dict[str, dict[str, Any]] = {
    "punctuation:no_comma": {},
    "keywords:existence": {"keywords": ["banana", "river"]},
    "keywords:forbidden_words": {"forbidden_words": ["very", "really"]},
    "length_constraints:number_words": {"num_words": 40, "relation": "less than"},
    "startend:end_checker": {"end_phrase": "Is there anything else I can help with?"},
    "detectable_format:number_bullet_lists": {"num_bullets": 3},
    "detectable_content:postscript": {"postscript_marker": "P.S."},
    "detectable_format:title": {},
    "startend:quotation": {},
}
"""The types checked by default, each with fixed arguments (``build_description`` draws missing ones at
random). None needs ``langdetect`` (not deterministic unless seeded) or NLTK's ``punkt_tab`` data."""

NEEDS_PUNKT = frozenset({"length_constraints:number_sentences"})
"""Types whose checker needs NLTK's ``punkt_tab`` data (a download): left out when it is absent."""


@dataclass(frozen=True)
class IFEvalConstraint:
    """A constraint built from an IFEval type: its text is ``build_description(**kwargs)``."""

    type: str
    kwargs: dict[str, Any]
    text: str


@dataclass
class TypeAgreement:
    """One type's result: IFEval's verdict per answer, and each function's agreement with it."""

    type: str
    constraint: str
    answers: int
    ifeval_passes: int
    agreement: dict[str, float] = field(default_factory=dict)
    """Function id -> share of answers where its verdict equals ``check_following``."""
    errors: dict[str, int] = field(default_factory=dict)
    """Function id -> answers where it gave no boolean (error, timeout, crash)."""

    @property
    def mean(self) -> float | None:
        """The mean agreement over the type's functions (None without functions)."""
        return sum(self.agreement.values()) / len(self.agreement) if self.agreement else None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "constraint": self.constraint, "answers": self.answers, "ifeval_passes": self.ifeval_passes,
                "agreement": dict(self.agreement), "errors": dict(self.errors), "mean": self.mean}  # fmt: skip


def _registry() -> dict[str, Any]:
    from ..extras import require

    require(EXTRA, "checking verifiers against IFEval", MODULE)
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    return dict(INSTRUCTION_DICT)


def punkt_available() -> bool:
    """Whether NLTK's ``punkt_tab`` sentence data is installed (it is a download, not part of the package)."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        return False
    return True


def _checker(registry: dict[str, Any], kind: str, kwargs: Mapping[str, Any]) -> tuple[Any, str]:
    if kind not in registry:
        raise ConfigError(f"{kind!r} is not an IFEval instruction type", hint=f"choose from: {', '.join(sorted(registry))}.")
    checker = registry[kind](kind)
    try:
        text = checker.build_description(**dict(kwargs))
    except TypeError as exc:
        raise ConfigError(f"IFEval type {kind!r}: bad arguments {dict(kwargs)!r} ({exc})") from None
    return checker, text


def ifeval_constraints(types: Mapping[str, Mapping[str, Any]] | None = None) -> list[IFEvalConstraint]:
    """The constraint texts of ``types`` (type -> ``build_description`` arguments; default :data:`DEFAULT_TYPES`).

    Types in :data:`NEEDS_PUNKT` are left out when NLTK's ``punkt_tab`` is not installed.

    Raises:
        MissingDependencyError: the ``ifeval`` extra is not installed.
        ConfigError: an unknown type or bad arguments.
    """
    registry = _registry()
    chosen = DEFAULT_TYPES if types is None else types
    skip = set() if punkt_available() else NEEDS_PUNKT
    out = []
    for kind, kwargs in chosen.items():
        if kind in skip:
            continue
        _, text = _checker(registry, kind, kwargs)
        out.append(IFEvalConstraint(kind, dict(kwargs), text))
    return out


def ifeval_agreement(
    functions_by_type: Mapping[str, Sequence[tuple[str, str]]],
    answers: Sequence[str],
    sandbox: "Sandbox",
    *,
    types: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, TypeAgreement]:
    """Per IFEval type, how often each model-written function agrees with IFEval's checker on ``answers``.

    Args:
        functions_by_type: IFEval type -> (function id, source of ``evaluate(response)``), e.g. the
            functions AutoIF kept for the constraint :func:`ifeval_constraints` built from that type.
        answers: the responses every function and every checker judges.
        sandbox: runs the model-written functions (never run in this process).
        types: the ``build_description`` arguments per type (default :data:`DEFAULT_TYPES`); a type
            of ``functions_by_type`` must be in it.

    Raises:
        MissingDependencyError: the ``ifeval`` extra is not installed.
        ConfigError: an unknown type, a type without arguments in ``types``, or no answers.
    """
    from .verify import verify_answers

    if not answers:
        raise ConfigError("the IFEval check needs at least one answer")
    registry = _registry()
    chosen = DEFAULT_TYPES if types is None else types
    rows = [(k, kind, text) for kind in functions_by_type for k, text in enumerate(answers)]
    verdicts = verify_answers([(i, kind, text) for i, (_, kind, text) in enumerate(rows)], {k: list(v) for k, v in functions_by_type.items()}, sandbox)
    out: dict[str, TypeAgreement] = {}
    for kind, functions in functions_by_type.items():
        if kind not in chosen:
            raise ConfigError(f"IFEval type {kind!r} has no build_description arguments", hint="give them in types={...}.")
        checker, text = _checker(registry, kind, chosen[kind])
        truth = [bool(checker.check_following(a)) for a in answers]
        result = TypeAgreement(kind, text, len(answers), sum(truth))
        mine = [verdicts[i] for i, (_, k, _) in enumerate(rows) if k == kind]
        for f, (fid, _) in enumerate(functions):
            got = [v[f] for v in mine]
            result.agreement[fid] = sum(g is t for g, t in zip(got, truth, strict=True)) / len(answers)
            result.errors[fid] = sum(g is None for g in got)
        out[kind] = result
    return out
