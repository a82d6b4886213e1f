"""AutoIF: reading constraint lists, verifier replies and judge scores, by hand-made shapes (no code runs)."""

from __future__ import annotations

import pytest

from hfevol.autoif import collect_constraints, load_seed_constraints, normalise_constraint, parse_constraint_lines, parse_judge_score, parse_verifier_reply
from hfevol.autoif.constraints import seed_constraint_file
from hfevol.autoif.verifiers import dedup_cases, dedup_functions, expected_bool
from hfevol.errors import DataError

GOOD_FUNC = "def evaluate(response):\n    return response.islower()"


def test_constraint_lines_drop_preambles_numbering_bullets_and_blanks():
    reply = """Sure! Here are some new instructions:

1. Answer in exactly two sentences.
2) Use the word "apple" three times.
- Do not use the letter q anywhere.
* **End with the phrase "Over and out."**
(5) "Start every line with a dash."
### Format instructions:
```
Short one
ok
Let me know if you need more!"""
    lines, dropped = parse_constraint_lines(reply)
    assert lines == [
        "Answer in exactly two sentences.",
        'Use the word "apple" three times.',
        "Do not use the letter q anywhere.",
        'End with the phrase "Over and out."',
        "Start every line with a dash.",
    ]
    # the preamble, the heading, the fence, two lines under three words, the sign-off
    assert dropped == 6


def test_constraint_lines_of_nothing():
    assert parse_constraint_lines(None) == ([], 0)
    assert parse_constraint_lines("\n\n  \n") == ([], 0)


def test_dedup_on_normalised_text_keeps_seeds_first_and_records_the_twin():
    seeds = ["Write in lowercase.", "Use no commas."]
    samples = [{"sample": 0, "constraint_lines": ["write   in LOWERCASE", "End with “done”.", 'end with "done"']}]
    rows = collect_constraints(seeds, samples)
    assert [(r["constraint_id"], r["origin"], r["constraint_status"], r["constraint_reason"]) for r in rows] == [
        ("c0000", "seed", "ok", None),
        ("c0001", "seed", "ok", None),
        ("c0002", "generated", "duplicate", "same constraint as c0000"),
        ("c0003", "generated", "ok", None),
        ("c0004", "generated", "duplicate", "same constraint as c0003"),
    ]
    assert normalise_constraint(" Say  “Hi”. ") == 'say "hi"'
    without = collect_constraints(seeds, samples, keep_seeds=False)
    assert [r["constraint_status"] for r in without] == ["duplicate", "ok", "duplicate"]
    assert without[0]["constraint_reason"] == "same constraint as a seed"


def test_seed_files(tmp_path):
    seeds = load_seed_constraints()
    assert 30 <= len(seeds) <= 40 and len({normalise_constraint(s) for s in seeds}) == len(seeds)
    assert seed_constraint_file().is_file()
    empty = tmp_path / "seeds.txt"
    empty.write_text("# only a comment\n\n   \n")
    with pytest.raises(DataError, match="holds no constraint"):
        load_seed_constraints(empty)
    with pytest.raises(DataError, match="cannot be read"):
        load_seed_constraints(tmp_path / "missing.txt")


FENCED = """Here is my answer:
```json
{"func": "def evaluate(response):\\n    return response.islower()", "cases": [{"input": "abc", "output": true}, {"input": "ABC", "output": false}]}
```
Hope it helps."""


@pytest.mark.parametrize(
    "reply",
    [
        FENCED,
        # bare, no fence, prose around it
        'Sure. {"func": "def evaluate(response):\\n    return response.islower()", "cases": [{"input": "abc", "output": true}, {"input": "ABC", "output": false}]} Done.',
        # raw newlines inside the JSON string (the reference's own example has one)
        '{"func": "def evaluate(response):\n    return response.islower()", "cases": [{"input": "abc", "output": true}, {"input": "ABC", "output": false}]}',
        # Python literals: True/False and single quotes
        "```json\n{'func': 'def evaluate(response):\\n    return response.islower()', 'cases': [{'input': 'abc', 'output': True}, {'input': 'ABC', 'output': False}]}\n```",
        # expected outputs as strings, in any case
        '{"func": "def evaluate(response):\\n    return response.islower()", "cases": [{"input": "abc", "output": "True"}, {"input": "ABC", "output": " false "}]}',
        # an invalid JSON escape \\' that only the literal parser reads, and a fence without a language
        '```\n{"func": "def evaluate(response):\\n    return response.islower()", "cases": [{"input": "abc", "output": true}, {"input": "ABC", "output": false}], "note": "it\\\'s fine"}\n```',
        # cases as [input, output] pairs, func inside a python fence, escaped twice
        '{"func": "```python\\ndef evaluate(response):\\n    return response.islower()\\n```", "cases": [["abc", true], ["ABC", false]]}',
    ],
)
def test_verifier_shapes_that_parse(reply):
    parsed = parse_verifier_reply(reply)
    assert parsed.problem is None
    assert parsed.func.strip() == GOOD_FUNC
    assert parsed.cases == (("abc", True), ("ABC", False))
    assert parsed.dropped_cases == ()


def test_double_escaped_newlines_are_repaired():
    parsed = parse_verifier_reply('{"func": "def evaluate(response):\\\\n    return True", "cases": []}')
    assert parsed.func == "def evaluate(response):\n    return True"


@pytest.mark.parametrize(
    "reply, problem",
    [
        ("", "the reply is empty"),
        ("I cannot write that function.", "no JSON object could be read"),
        ("[1, 2, 3]", "holds a JSON list"),
        ('{"code": "def evaluate(r): return True"}', "has no 'func'"),
        ('{"func": ["def evaluate(r):", "return True"]}', "'func' is a list"),
        ('{"func": "   "}', "'func' is empty"),
        ('{"func": "def check(response):\\n    return True"}', "defines no function named evaluate"),
        ("{'func': __import__('os').system('true')}", "no JSON object could be read"),  # never evaluated
        ('{"func": "def evaluate(r): return True", "cases": [' * 200, "no JSON object could be read"),
        ("x" * 100_001, "longer than 100000 characters"),
    ],
)
def test_verifier_shapes_that_give_a_reason(reply, problem):
    parsed = parse_verifier_reply(reply)
    assert parsed.func is None and problem in parsed.problem


def test_bad_cases_are_dropped_with_reasons_and_the_function_kept():
    reply = '{"func": "def evaluate(r):\\n    return True", "cases": [{"input": "a", "output": 1}, {"input": 5, "output": true}, "oops", {"input": "b", "output": "yes"}, {"input": "c", "output": false}]}'
    parsed = parse_verifier_reply(reply)
    assert parsed.problem is None and parsed.cases == (("c", False),)
    assert parsed.dropped_cases == (
        "case 0: 'output' 1 is not true or false",
        "case 1: 'input' is a int, not a string",
        "case 2 is a str, not an object with 'input' and 'output'",
        "case 3: 'output' 'yes' is not true or false",
    )
    assert parse_verifier_reply('{"func": "def evaluate(r):\\n    return True"}').dropped_cases == ("the object has no 'cases'",)
    assert parse_verifier_reply('{"func": "def evaluate(r):\\n    return True", "cases": {"a": 1}}').dropped_cases == ("'cases' is a dict, not a list",)


def test_expected_bool_only_accepts_bools_and_their_names():
    assert [expected_bool(v) for v in (True, False, "TRUE", "False", 1, 0, None, "yes")] == [True, False, True, False, None, None, None, None]


def test_dedup_is_order_stable():
    assert dedup_functions(["a", None, " a\n", "b", "a"]) == [None, None, 0, None, 0]
    cases = [("z", True), ("a", False), ("z", True), ("a", True), ("a", False)]
    assert dedup_cases(cases) == [("z", True), ("a", False), ("a", True)]


@pytest.mark.parametrize(
    "reply, score",
    [
        ("The answer is on topic.\nScore: 9", 9.0),
        ("Good.\nScore: 9/10", 9.0),
        ("Score: 7 out of 10. The format is followed, though it is brief.", 7.0),
        ("**Score:** 8\n\nI hope this helps!", 8.0),
        ("First I thought Score: 3, but on reflection\nScore: 6", 6.0),
        ("Analysis: fine.\n10", 10.0),
        ("score = 4.5", 4.5),
        ("It follows the instruction well.", None),
        ("Score: 42", None),
        ("", None),
        (None, None),
    ],
)
def test_judge_scores(reply, score):
    assert parse_judge_score(reply) == score
