"""Instruction reward: a sequence-classification reward model scores (evolution prompt of the parent, evolved instruction).

The paper (Table 14) scores evolved instructions with InternLM2-7B-Reward "given the evolved
prompt templates". Its reference code builds the user turn from the *evolved* instruction
itself and repeats it as the assistant turn, which looks like a bug (see the research
note); here the user turn is the evolution prompt the evolver actually answered: the
operation's template (``prompts/evol_instruct/<operation>.jinja``) applied to the row's
``parent_instruction``, and the assistant turn the evolved instruction. The model and its
chat template are used through :class:`hfevol.car.reward.ClassifierReward`. No length
adjustment is applied (the reference code's is not in the paper). Rows whose operation
has no Evol-Instruct template (Auto Evol-Instruct) or no parent get None, counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import prompts


def evolution_prompt(parent: str | None, operation: str | None) -> str | None:
    """The evolution prompt that produced a row, or None when it cannot be rebuilt."""
    from ..evolution.operations import ALL_OPERATIONS

    if not parent or operation not in ALL_OPERATIONS:
        return None
    return prompts.render(f"evol_instruct/{operation}", instruction=parent)


@dataclass
class InstructionReward:
    """The reward of each evolved instruction as the answer to its parent's evolution prompt.

    Args:
        model: a sequence-classification reward model with a chat template (folder or cached Hub id).
        reward_head: which output is the reward, for a model with several.
        batch_size: pairs per forward pass.
    """

    model: str
    reward_head: int | None = None
    batch_size: int = 8

    def _reward(self) -> Any:
        if getattr(self, "_classifier", None) is None:
            from ..car.reward import ClassifierReward

            self._classifier = ClassifierReward(model=self.model, reward_head=self.reward_head, batch_size=self.batch_size)
        return self._classifier

    def describe(self) -> dict[str, Any]:
        return {
            **self._reward().describe(),
            "pair": "user: evolution prompt of the parent instruction; assistant: evolved instruction",
            "length_adjustment": None,
        }

    def score(self, parents: Sequence[str | None], operations: Sequence[str | None], evolved: Sequence[str]) -> tuple[list[float | None], int]:
        """One reward per row (None where the prompt cannot be rebuilt), and how many such rows there are."""
        built = [evolution_prompt(p, o) for p, o in zip(parents, operations, strict=True)]
        keep = [i for i, b in enumerate(built) if b is not None]
        values: list[float | None] = [None] * len(built)
        if keep:
            scores = self._reward().score([built[i] for i in keep], [evolved[i] for i in keep])
            for i, s in zip(keep, scores):
                values[i] = float(s)
        return values, len(built) - len(keep)
