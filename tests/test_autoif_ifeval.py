"""Verifier quality against IFEval's own checkers (the ``ifeval`` extra, in the ``test`` extra too).

Hand-written verifiers, one right and one wrong per type, on crafted answers; every agreement
below is worked out by hand from the answers (IFEval's checker is the ground truth).
"""

from __future__ import annotations

import sys

import pytest

from hfevol.errors import ConfigError, MissingDependencyError
from hfevol.sandbox import Sandbox

ANSWERS = [
    "banana river",  # 2 words, no comma, both keywords
    "Banana, river, sea, and sky today",  # 6 words, 3 commas, both keywords (one capitalised)
    "a banana, by the sea",  # 5 words, 1 comma, no river
    "The River had no fruit at all",  # 7 words, no comma, no banana
]
TYPES = {
    "punctuation:no_comma": {},
    "keywords:existence": {"keywords": ["banana", "river"]},
    "length_constraints:number_words": {"num_words": 5, "relation": "less than"},
}


def _fn(body: str) -> str:
    return "import re\n\ndef evaluate(response):\n    " + body + "\n"


FUNCTIONS = {
    "punctuation:no_comma": [("right", _fn('return "," not in response')), ("wrong", _fn('return response.count(",") < 2'))],
    "keywords:existence": [("right", _fn('r = response.lower()\n    return "banana" in r and "river" in r')), ("wrong", _fn('return "banana" in response'))],
    "length_constraints:number_words": [("right", _fn(r'return len(re.findall(r"\w+", response)) < 5')), ("wrong", _fn("return len(response.split()) <= 5")),
                                        ("raises", _fn('raise ValueError("no")'))],
}  # fmt: skip
# by hand, IFEval's verdicts: no_comma T F F T; existence T T F F; fewer than 5 words T F F F.
# wrong no_comma (< 2 commas): T F T T, agrees on 3 of 4; wrong existence (case-sensitive, banana only): T F T F, 2 of 4;
# wrong number_words (<= 5 split words): T F T F, 3 of 4; the raising one never gives a verdict: 0 of 4, 4 errors.
EXPECTED = {
    "punctuation:no_comma": ({"right": 1.0, "wrong": 0.75}, 2),
    "keywords:existence": ({"right": 1.0, "wrong": 0.5}, 2),
    "length_constraints:number_words": ({"right": 1.0, "wrong": 0.75, "raises": 0.0}, 1),
}


def test_model_written_functions_agree_with_ifevals_checkers_as_computed_by_hand():
    from hfevol.autoif.ifeval import ifeval_agreement

    with Sandbox(per_input_timeout=1.0) as sandbox:
        if sys.version_info < (3, 11):  # the extra's marker: if-verifiable needs 3.11, so the check names the extra
            with pytest.raises(MissingDependencyError, match=r"hfevol\[ifeval\]"):
                ifeval_agreement(FUNCTIONS, ANSWERS, sandbox, types=TYPES)
            return
        result = ifeval_agreement(FUNCTIONS, ANSWERS, sandbox, types=TYPES)
    assert set(result) == set(EXPECTED)
    for kind, (agreement, passes) in EXPECTED.items():
        got = result[kind]
        assert (got.agreement, got.ifeval_passes, got.answers) == (agreement, passes, 4), kind
        assert got.errors == {fid: (4 if fid == "raises" else 0) for fid in agreement}
        assert got.mean == pytest.approx(sum(agreement.values()) / len(agreement))
    assert "comma" in result["punctuation:no_comma"].constraint
    assert "banana" in result["keywords:existence"].constraint and "river" in result["keywords:existence"].constraint
    assert "less than 5 words" in result["length_constraints:number_words"].constraint


def test_constraint_texts_come_from_build_description_and_the_punkt_type_needs_its_data():
    from hfevol.autoif.ifeval import DEFAULT_TYPES, ifeval_constraints, punkt_available

    built = ifeval_constraints()
    assert [c.type for c in built] == list(DEFAULT_TYPES) and all(c.text.strip() for c in built)
    assert len({c.text for c in built}) == len(built)
    with_punkt = ifeval_constraints({"length_constraints:number_sentences": {"num_sentences": 3, "relation": "less than"}, "punctuation:no_comma": {}})
    expected = ["length_constraints:number_sentences", "punctuation:no_comma"] if punkt_available() else ["punctuation:no_comma"]
    assert [c.type for c in with_punkt] == expected


def test_bad_types_and_arguments_are_clear_errors():
    from hfevol.autoif.ifeval import ifeval_agreement, ifeval_constraints

    with pytest.raises(ConfigError, match="'keywords:nope' is not an IFEval instruction type"):
        ifeval_constraints({"keywords:nope": {}})
    with pytest.raises(ConfigError, match="bad arguments"):
        ifeval_constraints({"punctuation:no_comma": {"colour": "red"}})
    with pytest.raises(ConfigError, match="at least one answer"):
        ifeval_agreement(FUNCTIONS, [], None)  # type: ignore[arg-type]
