from __future__ import annotations

import pytest

from hfevol.errors import ConfigError
from hfevol.evolution import ALL_OPERATIONS, DEPTH_OPERATIONS, operation_for
from hfevol.evolution.operations import check_operations


def test_operation_order_matches_the_reference_code():
    assert DEPTH_OPERATIONS == ("add_constraints", "deepen", "concretize", "increase_reasoning")
    assert ALL_OPERATIONS == DEPTH_OPERATIONS + ("breadth",)


def test_rotation_round_1_by_hand():
    # ops[(i + r) % 5] with r = 1, worked out by hand for i = 0..6
    expected = ["deepen", "concretize", "increase_reasoning", "breadth", "add_constraints", "deepen", "concretize"]
    assert [operation_for(ALL_OPERATIONS, i, 1) for i in range(7)] == expected


def test_rotation_shifts_by_one_each_round_and_depth_only_has_period_four():
    # row 0 over rounds 1, 2, 3 with depth operations only: (0 + r) % 4 -> 1, 2, 3
    assert [operation_for(DEPTH_OPERATIONS, 0, r) for r in (1, 2, 3)] == ["deepen", "concretize", "increase_reasoning"]
    # row 2 in round 2 with depth only: (2 + 2) % 4 = 0
    assert operation_for(DEPTH_OPERATIONS, 2, 2) == "add_constraints"
    # a row never meets the same operation in consecutive rounds
    for i in range(10):
        assert operation_for(ALL_OPERATIONS, i, 1) != operation_for(ALL_OPERATIONS, i, 2)


@pytest.mark.parametrize("ops, needle", [(["deepen", "shorten"], "shorten"), ([], "empty"), (["deepen", "deepen"], "twice")])
def test_bad_operation_lists_are_refused(ops, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        check_operations(ops)
    if needle == "shorten":
        assert "known operations" in str(info.value)
