"""Each elimination rule, on crafted model outputs (several taken from the embedded model's real replies)."""

from __future__ import annotations

import pytest

from hfevol.errors import ConfigError, MissingColumnError
from hfevol.evolution import RULES, Elimination
from hfevol.evolution.elimination import has_request

PARENT = "Explain why the sky looks blue during the day but often turns red or orange at sunset."
MATH = "Tom reads 12 pages on every weekday and 20 pages on each day of the weekend. How many pages does he read in 3 weeks?"
GOOD = "Explain why the sky looks blue during the day but red at sunset, and compare the scattering of light on Mars in under 150 words."

E = Elimination()


def rule(text: str, parent: str = PARENT) -> str | None:
    hit = E.check(text, parent)
    return hit[0] if hit else None


def test_a_real_evolution_passes_every_rule():
    assert E.check(GOOD, PARENT) is None
    harder_math = MATH.replace("How many", "If he skips every Friday, how many") + " Show each step."
    assert E.check(harder_math, MATH) is None


@pytest.mark.parametrize("text", ["", "   ", "Explain.", "Why blue?"])
def test_too_short_by_word_count(text):
    assert rule(text) == "too_short"


def test_too_short_relative_to_the_parent():
    # the parent has 25 words (counted by hand); 0.3 * 25 = 7.5, so 7 words are too short and 8 are not
    assert rule("How many pages does Tom read weekly?", MATH) == "too_short"  # 7 words
    assert rule("How many pages does Tom read in total?", MATH) != "too_short"  # 8 words
    assert Elimination(min_length_ratio=0, rules=("too_short",)).check("How many pages in three weeks?", MATH) is None


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with rewriting that prompt.",
        "Sorry, I cannot do this task as it is unclear.",
        "I cannot create a harder version of this question because it might be unsafe.",
        "As an AI, I don't have opinions about the sky, but here is a thought.",
        '"I am unable to rewrite the prompt as requested."',
        "**I apologise**, but this request is outside what I can do.",
        "Here is a harder version: describe the sky. As an AI language model I must add that colours vary.",
    ],
)
def test_refusals(text):
    assert rule(text) == "refusal"


def test_refusal_words_inside_a_real_instruction_do_not_count():
    text = "Explain to a ten-year-old why I cannot see stars during the day, and why sunsets look red, in two paragraphs."
    assert rule(text) is None


@pytest.mark.parametrize(
    "text, marker",
    [
        ("#Rewritten Prompt#: Explain why the sky is blue and why sunsets are red in under 100 words.", "#rewritten prompt#"),
        ("Original Prompt: The most significant aspect of my journey has been empathy for people hurt by climate change.", "original prompt"),
        ("The new prompt is: explain why the sky looks blue during the day and red at sunset for a child.", "new prompt"),
        ("A: Ensure that the original prompt can be made to fit a more suitable format.", "original prompt"),
        ("Step 4 - Final rewrite: Explain the blue sky and red sunsets with reference to Rayleigh scattering.", "final rewrite"),
    ],
)
def test_template_echo(text, marker):
    hit = E.check(text, PARENT)
    assert hit is not None and hit[0] == "template_echo" and repr(marker) in hit[1]


def test_any_hash_label_is_an_echo_but_a_marker_already_in_the_parent_is_not():
    assert rule("#Created Task# Explain why the sky looks blue in the day and red at dusk for children.") == "template_echo"
    assert rule("#My Label# Explain why the sky looks blue in the day and red at dusk for children.") == "template_echo"
    parent = "Write a new prompt for an image model that shows a sunset."
    assert rule("Write a new prompt for an image model that shows a sunset over a frozen lake at dawn, in watercolour.", parent) is None


def test_unchanged_and_near_duplicates():
    hit = E.check(PARENT, PARENT)
    assert hit == ("near_duplicate", "the parent, unchanged")
    # case and punctuation changes only: 0 new words
    assert rule(PARENT.upper().replace(".", "!")) == "near_duplicate"
    # two new words ("please", "briefly") are fewer than 3
    hit = E.check("Please explain briefly why the sky looks blue during the day but often turns red or orange at sunset.", PARENT)
    assert hit[0] == "near_duplicate" and "adds 2 new word(s)" in hit[1]
    # similarity by hand: parent 17 words, rewrite 19, all 17 matched -> 2*17/36 = 0.94
    assert "0.94" in hit[1]
    # three new words pass this rule
    assert rule("Please explain briefly and simply why the sky looks blue during the day but often turns red or orange at sunset.") is None


def test_near_duplicate_threshold_is_configurable():
    text = "Please explain briefly and simply why the sky looks blue during the day but often turns red or orange at sunset."
    assert Elimination(min_new_words=5).check(text, PARENT)[0] == "near_duplicate"


@pytest.mark.parametrize(
    "text, needle",
    [
        # answers the question instead of asking one (real embedded-model replies)
        ("Tom reads 12 pages on every weekday and 20 pages on each day of the week, which is 3 times the weekly pages.", "statement"),
        ("The water cycle consists of several key stages, and the main ones include evaporation, condensation, and precipitation.", "statement"),
        ("```python\ndef count(path):\n    return len(open(path).read().split())\n```\n\nThis function counts the lines in the file.", "code"),
        ("Here it is:\n```python\ndef count(path):\n    return 1\n```\nThis function counts the lines in the file.", "statement"),
        ("import re\n\ndef is_palindrome(s):\n    return s == s[::-1]\n\n# Test the function\nprint(is_palindrome('aba'))", "code"),
        ("Sure! The sky is blue because air scatters short wavelengths more strongly than long ones.", "answer"),
        ("Certainly. Here is a longer version of your question about the colour of the sky at sunset.", "answer"),
        ("A water tank holds 500 litres and is 40% full. How long will the pump take?\nThe answer to this question is 12 minutes.", "answer"),
        # the assistant talking as itself (real embedded-model replies; each has a question mark)
        ("I'm ready to help. What can I assist you with today?", "answer"),
        ("I'm a helpful AI named SmolLM, and I'll do my best to help you with your request. How can I assist you in this case?", "answer"),
        ("Great, tell me more about the colour of the sky at sunset. How can I help you with it?", "offering help"),
        ("What a great challenge to create. Please go ahead and provide the revised prompt. I'm here to help you craft it.", "offering help"),
        # more real embedded-model replies: a GSM8K answer line, SQL, a statement with participle clauses
        ("A water tank holds 500 litres and is 40% full, so it holds 200 litres.\n#### 200\n\nYour answer is too long.", "answer"),
        ("INSERT INTO employees (name, salary) VALUES (0, 1000);", "code"),
        ("The household can save power by turning off lights, using a smart thermostat, and using a solar panel.", "statement"),
    ],
)
def test_not_an_instruction(text, needle):
    hit = E.check(text, MATH if "Tom" in text or "tank" in text else PARENT)
    assert hit is not None and hit[0] == "not_instruction" and needle in hit[1]


@pytest.mark.parametrize(
    "text",
    [
        "Describe the stages of the water cycle in order, giving one real-world example of each stage.",
        "Given the list of animals in the input, sort them by average lifespan and justify each placement.",
        "You are a travel agent; plan a three-day trip to Lisbon for a family with two small children.",
        "A train covers 60 km in 45 minutes and then stops for 10 minutes. What is its average speed over the whole trip",
        "Could you write a limerick about a cat who learns to code in Python",
        "Write a Python function `count_lines(path)` that ignores blank lines; it should also skip lines starting with #.",
        "I'm planning a garden for a shady yard: which five vegetables grow best with four hours of sun a day?",
        "Using only the numbers in the input, compute their median and explain each step.",
        "The table lists five cities, given in the input; rank them by population.",
    ],
)
def test_instructions_are_recognised(text):
    assert has_request(text)
    assert rule(text, "Do something.") is None


def test_the_heuristic_has_documented_limits():
    # a task stated without a question mark or a request word is flagged (a false positive)...
    assert rule("A train travels 60 km in 45 minutes; its average speed in km per hour, shown step by step.") == "not_instruction"
    # ...and an answer that starts a clause with a request word passes (a false negative)
    assert rule("The weekly total is 100 pages; consider the three weeks together, which gives 300 pages in all.", MATH) is None


def test_rules_run_in_order_and_the_first_names_the_row():
    # empty text would also fail not_instruction; too_short comes first
    assert rule("") == "too_short"
    # a refusal that also echoes a marker is a refusal
    assert rule("I'm sorry, I cannot produce the rewritten prompt for this instruction today.") == "refusal"
    assert RULES == ("too_short", "refusal", "template_echo", "near_duplicate", "not_instruction")


def test_rules_can_be_switched_off_one_by_one():
    text = "I'm sorry, but I can't help with rewriting that prompt."
    assert Elimination(rules=("too_short", "template_echo")).check(text, PARENT) is None
    assert Elimination(rules=()).check("", PARENT) is None


def test_the_transform_marks_rows_and_keeps_everything():
    batch = {
        "evolved_instruction": [GOOD, "I'm sorry, I can't.", None, PARENT],
        "parent_instruction": [PARENT, PARENT, PARENT, PARENT],
        "evol_status": ["ok", "ok", "failed", "truncated"],
        "evol_reason": [None, None, "backend error", "stopped at max_new_tokens=8"],
    }
    out = Elimination()(batch)
    assert out["evol_status"] == ["ok", "eliminated", "failed", "truncated"]
    assert out["elimination_rule"] == [None, "refusal", None, None]
    assert out["evol_reason"][1].startswith("refusal: refusal phrase")
    assert out["evol_reason"][2:] == ["backend error", "stopped at max_new_tokens=8"]


def test_bad_configuration():
    with pytest.raises(ConfigError, match="unknown elimination rule"):
        Elimination(rules=("too_short", "vibes"))
    with pytest.raises(ConfigError, match="min_length_ratio"):
        Elimination(min_length_ratio=2)
    with pytest.raises(MissingColumnError, match="evolved_instruction"):
        Elimination()({"evol_status": ["ok"]})
