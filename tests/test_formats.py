"""Reading Alpaca, ShareGPT and chat messages; writing Alpaca plus messages; round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from hfevol.errors import ConfigError, FormatError, InvalidRowError, MissingColumnError
from hfevol.formats import add_messages, detect_format, to_alpaca
from hfevol.io import load_rows

ALPACA = [
    {"instruction": "Name three primes.", "input": "", "output": "2, 3 and 5."},
    {"instruction": "Sort the list.", "input": "[3, 1, 2]", "output": "[1, 2, 3]"},
]
SHAREGPT = [
    {"conversations": [{"from": "human", "value": "Name three primes."}, {"from": "gpt", "value": "2, 3 and 5."}]},
    {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Sort [3, 1, 2]."}, {"from": "gpt", "value": "[1, 2, 3]"}]},
]
MESSAGES = [
    {"messages": [{"role": "user", "content": "Name three primes."}, {"role": "assistant", "content": "2, 3 and 5."}]},
    {"messages": [{"role": "user", "content": "Say hi."}]},
]


def test_detects_each_layout():
    assert detect_format(Dataset.from_list(ALPACA)) == "alpaca"
    assert detect_format(Dataset.from_list(SHAREGPT)) == "sharegpt"
    assert detect_format(Dataset.from_list(MESSAGES)) == "messages"


def test_sharegpt_becomes_alpaca_with_the_system_turn_kept():
    out = to_alpaca(Dataset.from_list(SHAREGPT))
    assert out["instruction"][:] == ["Name three primes.", "Sort [3, 1, 2]."]
    assert out["output"][:] == ["2, 3 and 5.", "[1, 2, 3]"]
    assert out["input"][:] == ["", ""]
    assert out["system"][:] == [None, "Be brief."]
    assert "conversations" not in out.column_names


def test_messages_without_an_answer_give_no_output_and_no_system_column():
    out = to_alpaca(Dataset.from_list(MESSAGES))
    assert out["instruction"][:] == ["Name three primes.", "Say hi."]
    assert out["output"][:] == ["2, 3 and 5.", None]
    assert "system" not in out.column_names


def test_alpaca_gets_missing_columns_and_magpie_response_becomes_output():
    out = to_alpaca(
        Dataset.from_list([{"instruction": "a", "response": "b", "conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}])
    )
    assert out[0]["input"] == "" and out[0]["output"] == "b"


def test_an_explicit_mapping_reads_any_column_names():
    ds = Dataset.from_list([{"question": "What is 2 + 2?", "context": "", "answer": "4"}])
    out = to_alpaca(ds, {"instruction": "question", "input": "context", "output": "answer"})
    assert out[0] == {"instruction": "What is 2 + 2?", "input": "", "output": "4"}
    chat = Dataset.from_list([{"dialog": MESSAGES[0]["messages"]}])
    assert to_alpaca(chat, {"messages": "dialog"})[0]["instruction"] == "Name three primes."


def test_a_mapping_to_a_missing_column_names_it():
    ds = Dataset.from_list([{"question": "q"}])
    with pytest.raises(MissingColumnError) as info:
        to_alpaca(ds, {"instruction": "prompt"})
    assert "column 'prompt' is missing" in str(info.value) and "instruction=prompt" in str(info.value)
    with pytest.raises(ConfigError, match="cannot map onto 'answer'"):
        to_alpaca(ds, {"answer": "question"})
    with pytest.raises(ConfigError, match="overwrite the existing column 'instruction'"):
        to_alpaca(Dataset.from_list([{"question": "q", "instruction": "i"}]), {"instruction": "question"})


def test_mixed_formats_are_refused_naming_both_rows(tmp_path: Path):
    path = tmp_path / "mixed.jsonl"
    rows = [ALPACA[0], ALPACA[1], SHAREGPT[0]]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = load_rows(str(path))
    with pytest.raises(FormatError) as info:
        to_alpaca(ds)
    message = str(info.value)
    assert "mixed formats" in message and "row 0 is in alpaca layout" in message and "row 2 is in sharegpt layout" in message


def test_a_conversation_without_a_human_turn_names_the_row():
    rows = SHAREGPT + [{"conversations": [{"from": "system", "value": "x"}, {"from": "gpt", "value": "hello"}]}]
    with pytest.raises(InvalidRowError) as info:
        to_alpaca(Dataset.from_list(rows))
    assert info.value.row == 2 and info.value.column == "conversations"
    assert "row 2, column 'conversations': the conversation has no human turn" in str(info.value)


def test_malformed_turns_name_the_row():
    with pytest.raises(InvalidRowError, match="row 1, column 'messages': turn 0 has the unknown role 'narrator'"):
        to_alpaca(Dataset.from_list(MESSAGES[:1] + [{"messages": [{"role": "narrator", "content": "x"}]}]))


def test_no_known_layout_and_a_forced_layout_without_its_column():
    with pytest.raises(MissingColumnError, match="column 'instruction' is missing; the dataset has: 'prompt'") as info:
        to_alpaca(Dataset.from_list([{"prompt": "x"}]))
    assert "no known layout" in str(info.value) and "--map instruction=COLUMN" in str(info.value)
    with pytest.raises(MissingColumnError, match="'conversations'"):
        to_alpaca(Dataset.from_list(ALPACA), format="sharegpt")


def test_messages_are_written_from_alpaca_columns():
    out = add_messages(Dataset.from_list(ALPACA + [{"instruction": None, "input": "", "output": None}, {"instruction": "Q", "input": "", "output": None}]))
    assert out[0]["messages"] == [{"role": "user", "content": "Name three primes."}, {"role": "assistant", "content": "2, 3 and 5."}]
    assert out[1]["messages"][0] == {"role": "user", "content": "Sort the list.\n\n[3, 1, 2]"}
    assert out[2]["messages"] is None
    assert out[3]["messages"] == [{"role": "user", "content": "Q"}]


def test_round_trip_alpaca_messages_alpaca():
    written = add_messages(Dataset.from_list(ALPACA))
    back = to_alpaca(written.select_columns(["messages"]))
    # the input is joined to the instruction with a blank line; everything else comes back as it was
    assert back["instruction"][:] == ["Name three primes.", "Sort the list.\n\n[3, 1, 2]"]
    assert back["output"][:] == [r["output"] for r in ALPACA]


def test_round_trip_sharegpt_alpaca_messages_matches_the_conversations():
    alpaca = to_alpaca(Dataset.from_list(SHAREGPT))
    written = add_messages(alpaca)
    for original, row in zip(SHAREGPT, written):
        expected = [{"role": {"human": "user", "gpt": "assistant", "system": "system"}[t["from"]], "content": t["value"]} for t in original["conversations"]]
        assert row["messages"] == expected


def test_round_trip_through_a_parquet_file(tmp_path: Path):
    written = add_messages(to_alpaca(Dataset.from_list(MESSAGES)))
    written.to_parquet(str(tmp_path / "x.parquet"))
    back = to_alpaca(load_rows(str(tmp_path / "x.parquet")).select_columns(["messages"]))
    assert back["instruction"][:] == ["Name three primes.", "Say hi."]
    assert back["output"][:] == ["2, 3 and 5.", None]
