"""Instruction reward: the pair is (the parent's evolution prompt, the evolved instruction), not the paper code's self-wrap."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfevol.analysis.reward import InstructionReward


class Recorder:
    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def score(self, instructions: list[str], responses: list[str]) -> list[float]:
        self.pairs.extend(zip(instructions, responses))
        return [float(len(r)) for r in responses]

    def describe(self) -> dict:
        return {"kind": "classifier", "model": "recorder"}


def test_reward_wraps_the_parent_in_its_operation_prompt() -> None:
    reward = InstructionReward(model="unused")
    reward._classifier = Recorder()
    parent = "Explain rainbows."
    values, no_prompt = reward.score([parent, parent, None], ["deepen", "auto_evol_step", "deepen"], ["Explain rainbows and halos.", "x", "y"])
    assert values == [float(len("Explain rainbows and halos.")), None, None] and no_prompt == 2
    ((user, assistant),) = reward._classifier.pairs
    assert parent in user and user != parent and assistant == "Explain rainbows and halos."
    assert "ask for more depth and breadth about that subject" in user  # the deepen operation's own wording (prompts/evol_instruct/deepen.jinja)


def test_reward_with_a_real_classifier(tmp_path: Path) -> None:
    from test_car_reward import tiny_reward_model

    from hfevol import prompts
    from hfevol.car.reward import ClassifierReward

    folder = str(tiny_reward_model(tmp_path / "rm"))
    values, _ = InstructionReward(model=folder).score(["what is two plus four"], ["add_constraints"], ["what is two plus four it six"])
    want = ClassifierReward(model=folder).score(
        [prompts.render("evol_instruct/add_constraints", instruction="what is two plus four")], ["what is two plus four it six"]
    )
    assert values == pytest.approx(want)
