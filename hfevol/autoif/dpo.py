"""DPO pairs from sampled answers: one that passes every kept verifier (chosen) against one that passes none (rejected).

The layout is TRL's conversational preference format with an explicit prompt:
``prompt`` (the user turn), ``chosen`` and ``rejected`` (one assistant turn each), so a
trainer applies its own chat template. Per (constraint, query) pair, the passing and the
failing answers are matched in response order, each answer used at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..formats import user_turn


def dpo_pairs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The preference pairs in ``rows`` (the answer rows of an AutoIF run).

    A row takes part when its answer is ``ok`` (``output_status``) and has a pass rate:
    rate 1.0 is a candidate ``chosen`` when the row was kept (``autoif_status`` ``ok``, so the
    judge did not filter it), rate 0.0 a candidate ``rejected``.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("output_status") == "ok" and row.get("pass_rate") is not None and row.get("output"):
            groups.setdefault(row["pair_id"], []).append(row)
    pairs = []
    for pair_id, answers in groups.items():
        answers = sorted(answers, key=lambda r: r["response_index"])
        good = [r for r in answers if r["pass_rate"] == 1.0 and r.get("autoif_status") == "ok"]
        bad = [r for r in answers if r["pass_rate"] == 0.0]
        for chosen, rejected in zip(good, bad):
            pairs.append(
                {
                    "prompt": [{"role": "user", "content": user_turn(chosen["instruction"], chosen.get("input") or None)}],
                    "chosen": [{"role": "assistant", "content": chosen["output"]}],
                    "rejected": [{"role": "assistant", "content": rejected["output"]}],
                    "pair_id": pair_id,
                    "constraint_id": chosen["constraint_id"],
                    "chosen_id": chosen["id"],
                    "rejected_id": rejected["id"],
                }
            )
    return pairs
