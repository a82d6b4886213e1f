"""Selection by score, on made-up scores."""

from __future__ import annotations

import math

import pytest
from datasets import Dataset

from hfevol.errors import ConfigError, DataError, MissingColumnError
from hfevol.scoring import plan_selection, select
from hfevol.scoring.select import parse_top

NAN = math.nan
SCORES = [0.3, NAN, 0.9, 0.1, 0.5, None, 0.7, 0.2]  # 6 defined: best 0.9 (2), 0.7 (6), 0.5 (4)
IFD = [0.8, 0.9, 1.2, 0.5, 0.95, 0.9, 0.99, NAN]


@pytest.mark.parametrize(
    "top, expected",
    [
        (0.25, ("fraction", 0.25)),
        ("25%", ("fraction", 0.25)),
        (" 12.5 %", ("fraction", 0.125)),
        (100, ("count", 100.0)),
        ("7", ("count", 7.0)),
        ("0.5", ("fraction", 0.5)),
        (1.0, ("fraction", 1.0)),
    ],
)
def test_top_forms(top, expected):
    assert parse_top(top) == expected


@pytest.mark.parametrize("top", [0, -3, 1.5, "0%", "150%", "a lot", True, None, 0.0])
def test_bad_top_values_are_refused(top):
    with pytest.raises(ConfigError):
        parse_top(top)


def test_top_share_of_the_defined_rows_in_dataset_order():
    # 50% of the 6 defined rows = 3: 0.9, 0.7, 0.5 -> rows 2, 4, 6
    sel = plan_selection(SCORES, 0.5)
    assert sel.indices == [2, 4, 6]
    assert (sel.total, sel.undefined, sel.eligible, sel.threshold) == (8, 2, 6, 0.5)
    assert plan_selection(SCORES, "25%").indices == [2, 6]  # 1.5 rounds half up to 2
    assert plan_selection(SCORES, 2).indices == [2, 6]
    assert plan_selection(SCORES, 100).indices == [0, 2, 3, 4, 6, 7]  # a count above the rows keeps them all
    assert plan_selection(SCORES, 2, ascending=True).indices == [3, 7]


def test_cherry_filter_drops_ifd_above_one_before_ranking():
    sel = plan_selection(SCORES, 2, ifd=IFD, drop_ifd_above_one=True)
    # row 2 has IFD 1.2 and row 7 an undefined IFD: dropped; best of the rest: 0.7 (6), 0.5 (4)
    assert sel.indices == [4, 6]
    assert (sel.dropped_ifd_above_one, sel.eligible) == (2, 4)


def test_ties_keep_dataset_order():
    assert plan_selection([0.5, 0.5, 0.5, 0.1], 2).indices == [0, 1]


def test_select_on_a_dataset():
    ds = Dataset.from_dict({"id": list(range(8)), "ic_ifd": SCORES, "ifd": IFD})
    kept, selection = select(ds, top="50%", return_selection=True)
    assert kept["id"] == [2, 4, 6] and selection.undefined == 2
    assert select(ds, by="ifd", top=1)["id"] == [2]
    with pytest.raises(MissingColumnError, match="'score' is missing"):
        select(ds, by="score")
    with pytest.raises(DataError, match="no rows"):
        select(ds.select([]), top=1)
    with pytest.raises(MissingColumnError, match="'ifd'"):
        select(ds.remove_columns("ifd"), drop_ifd_above_one=True)


def test_select_refuses_a_text_column_and_lists_numeric_ones_for_a_missing_column():
    ds = Dataset.from_dict({"instruction": ["a", "b"], "ic_ifd": [0.1, 0.2], "ifd": [0.5, 0.6]})
    with pytest.raises(ConfigError) as info:
        select(ds, by="instruction", top=1)
    assert info.value.message == "by='instruction' names a column of string values; rows can only be ranked by a numeric score"
    assert info.value.hint == "choose one of the numeric columns: ic_ifd, ifd."
    with pytest.raises(MissingColumnError) as missing:
        select(ds, by="score", top=1)
    assert missing.value.hint == "by must name one of its numeric columns: ic_ifd, ifd."
    with pytest.raises(MissingColumnError) as unscored:
        select(ds.remove_columns(["ic_ifd", "ifd"]), top=1)
    assert unscored.value.hint.startswith("score the data first")
