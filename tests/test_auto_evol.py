"""The Auto Evol-Instruct parser and transform."""

from __future__ import annotations

import pytest
from _helpers import ScriptedBackend

from hfevol import AutoEvolInstruct, SamplingParams
from hfevol.evolution import parse_auto_evol

CLEAN = """Step 1 - Complexity methods:
- Add a word limit
- Ask for a comparison with another planet
Step 2 - Plan:
Combine the word limit with the comparison.
Step 3 - First rewrite:
Explain why the sky is blue, comparing it with Mars.
Step 4 - Final rewrite:
Explain why Earth's sky is blue and Mars's is butterscotch, in under 120 words."""

FINAL = "Explain why Earth's sky is blue and Mars's is butterscotch, in under 120 words."


def test_the_layout_the_prompt_asks_for():
    p = parse_auto_evol(CLEAN)
    assert p.methods == ["Add a word limit", "Ask for a comparison with another planet"]
    assert p.plan == "Combine the word limit with the comparison."
    assert p.draft == "Explain why the sky is blue, comparing it with Mars."
    assert p.final == FINAL and p.problem is None


@pytest.mark.parametrize(
    "text",
    [
        # markdown bold headings, text on the same line, chatter before and after
        "Sure, here you go!\n\n**Step 1 - Complexity methods:**\n1. Add a word limit\n2. Ask for a comparison with another planet\n\n"
        "**Step 2 - Plan:** Combine the word limit with the comparison.\n\n**Step 3 - First rewrite:** Explain why the sky is blue.\n\n"
        f'**Step 4 - Final rewrite:** "{FINAL}"\n\nNote: I added a limit and a comparison.',
        # markdown headings without colons and without "Step"
        f"### Complexity methods\n* Add a word limit\n* Ask for a comparison with another planet\n### Plan\nCombine them.\n### First rewrite\nExplain.\n### Final rewrite\n{FINAL}",
        # bare numbered headings with other names, lower case
        f"1. methods list:\n- Add a word limit\n- Ask for a comparison with another planet\n2. plan: combine\n3. rewritten instruction: x\n4. final instruction:\n{FINAL}",
        # the original paper-style labels and an echo of the instruction at the end
        f"#Methods List#\n1. Add a word limit 2. Ask for a comparison with another planet\n#Plan#\np\n#Rewritten Instruction#\nd\n"
        f"#Finally Rewritten Instruction#\n{FINAL}\n\nInstruction:\nWhy is the sky blue?",
        # "Step N" only, with a missing colon and the text on the same line
        f"Step 1 Add a word limit; Ask for a comparison with another planet\nStep 2\nplan\nStep 3\ndraft\nStep 4 {FINAL}",
    ],
)
def test_tolerates_numbering_markdown_missing_colons_and_chatter(text):
    p = parse_auto_evol(text)
    assert p.problem is None
    assert p.final == FINAL
    assert p.methods == ["Add a word limit", "Ask for a comparison with another planet"] or p.methods == []


def test_method_lists_in_the_variants_above_are_read_item_by_item():
    one_line = parse_auto_evol(f"Methods: 1. Add a word limit 2. Ask for a comparison\nFinal: {FINAL}")
    assert one_line.methods == ["Add a word limit", "Ask for a comparison"]
    semicolons = parse_auto_evol(f"Methods: Add a word limit; Ask for a comparison\nFinal: {FINAL}")
    assert semicolons.methods == ["Add a word limit", "Ask for a comparison"]


def test_the_last_heading_wins_and_commentary_after_the_final_rewrite_is_dropped():
    text = CLEAN + "\n\nThis version keeps the topic but asks for more.\n\nStep 4 - Final rewrite:\nA second, better final rewrite of the sky question."
    assert parse_auto_evol(text).final == "A second, better final rewrite of the sky question."
    text = CLEAN + "\n\nThis version keeps the topic but asks for more."
    assert parse_auto_evol(text).final == FINAL


def test_a_multi_paragraph_final_rewrite_is_kept_whole():
    text = CLEAN.replace(FINAL, "Use the table below to answer.\n\n| a | b |\n| 1 | 2 |")
    assert parse_auto_evol(text).final == "Use the table below to answer.\n\n| a | b |\n| 1 | 2 |"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("The sky is blue because of Rayleigh scattering.", "no final rewrite (step 4) found; no step headings at all"),
        ("Step 1 - Complexity methods:\n- a\nStep 2 - Plan:\nb\nStep 3 - First rewrite:\nc", "no final rewrite (step 4) found; found: methods, plan, draft"),
        ("Step 1 - Complexity methods:\n- a\nStep 4 - Final rewrite:\n   \n", "the final rewrite (step 4) is empty"),
        ("", "no final rewrite (step 4) found; no step headings at all"),
    ],
)
def test_parse_failures_say_what_is_missing(text, problem):
    p = parse_auto_evol(text)
    assert p.final is None and p.problem == problem


def test_words_that_merely_start_like_headings_are_not_headings():
    text = "Step 4 - Final rewrite:\nPlan a trip to Rome.\nFinal answer should be a list.\nMethods of transport must be compared."
    assert parse_auto_evol(text).final == "Plan a trip to Rome.\nFinal answer should be a list.\nMethods of transport must be compared."


def test_transform_keeps_the_trajectory_and_marks_parse_failures():
    backend = ScriptedBackend(reply=CLEAN)
    auto = AutoEvolInstruct(backend=backend, sampling=SamplingParams(max_new_tokens=512))
    out = auto({"instruction": ["Why is the sky blue?", ""]}, [0, 1])
    assert out["evol_status"] == ["ok", "invalid_input"]
    assert out["evolved_instruction"][0] == FINAL
    assert out["evol_methods"][0] == ["Add a word limit", "Ask for a comparison with another planet"]
    assert out["evol_plan"][0] == "Combine the word limit with the comparison."
    assert out["evol_operation"] == ["auto_evol", "auto_evol"]
    prompt = backend.calls[0].messages[-1][1]
    assert "Why is the sky blue?" in prompt and "Step 4 - Final rewrite:" in prompt

    failing = AutoEvolInstruct(backend=ScriptedBackend(reply="The sky is blue because of scattering."))
    out = failing({"instruction": ["Why is the sky blue?"]}, [0])
    assert out["evol_status"] == ["parse_failed"] and out["evolved_instruction"] == [None]
    assert out["evol_reason"][0].startswith("no final rewrite")
    assert out["evol_methods"] == [[]]

    truncated = AutoEvolInstruct(backend=ScriptedBackend(reply="Step 1 - Complexity methods:\n- a", finish_reason="length"))
    out = truncated({"instruction": ["Why is the sky blue?"]}, [0])
    assert out["evol_status"] == ["truncated"] and "before" not in out["evol_reason"][0] and "no final rewrite" in out["evol_reason"][0]


def test_metadata_and_features():
    auto = AutoEvolInstruct(backend=ScriptedBackend(), seed=3)
    meta = auto.metadata()
    assert meta["stage"] == "auto_evol" and meta["operations"] == ["auto_evol"] and len(meta["prompt_versions"]["rewrite"]) == 12
    assert "evol_methods" in auto.output_features() and "evol_plan" in auto.output_features()


@pytest.mark.slow
def test_real_model_replies_become_statuses_never_exceptions(embedded):
    from hfevol import TransformersBackend, builtin_sample
    from hfevol.transform import map_rows

    ds = builtin_sample().select([0, 20])
    auto = AutoEvolInstruct(backend=TransformersBackend(device="cpu"), sampling=SamplingParams(max_new_tokens=48))
    out = map_rows(ds, auto, auto.output_features(), with_indices=True)
    assert set(out["evol_status"]) <= {"ok", "parse_failed", "truncated"}
    for row in out:
        if row["evol_status"] == "ok":
            assert row["evolved_instruction"]
        if row["evol_status"] == "parse_failed":
            assert row["evolved_instruction"] is None and row["evol_reason"]
        assert isinstance(row["evol_methods"], list)
