"""Instruction-data layouts: read Alpaca, ShareGPT/Magpie and chat ``messages``; write Alpaca plus ``messages``.

Layouts read (each row must be in one of them, and every row in the same one):

- ``alpaca``: ``instruction``, optional ``input``, optional ``output`` (Magpie's ``response``
  is used as ``output`` when there is no ``output`` column).
- ``sharegpt``: ``conversations``, a list of ``{"from": ..., "value": ...}`` turns (ShareGPT,
  Magpie). ``human``/``user`` turns ask, ``gpt``/``assistant``/``model`` turns answer.
- ``messages``: a list of ``{"role": ..., "content": ...}`` turns (chat format), roles
  ``system``, ``user``, ``assistant``.
- any other column names, through an explicit ``mapping`` such as
  ``{"instruction": "question", "output": "answer"}`` or ``{"messages": "dialog"}``.

From a conversation the first user turn becomes ``instruction`` and the assistant turn
right after it ``output``; a system turn before it goes to a ``system`` column. Later turns
are not used (a warning counts the rows that have them). ``input`` is empty.

Written layout (:func:`add_messages`): the Alpaca columns plus ``messages``, whose user turn
is the instruction, followed by a blank line and the input when there is one, and whose
assistant turn is the output when there is one. Reading that ``messages`` back therefore
gives the instruction and input joined in ``instruction``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError, FormatError, InvalidRowError, MissingColumnError
from .transform import Batch, map_rows

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

Format = Literal["alpaca", "sharegpt", "messages"]
FORMATS: tuple[Format, ...] = ("alpaca", "sharegpt", "messages")
_KEY_COLUMN = {"alpaca": "instruction", "sharegpt": "conversations", "messages": "messages"}
MAPPABLE: tuple[str, ...] = ("instruction", "input", "output", "conversations", "messages")

HUMAN_ROLES = frozenset({"human", "user"})
ASSISTANT_ROLES = frozenset({"gpt", "assistant", "model", "chatgpt", "bard", "bing"})
SYSTEM_ROLES = frozenset({"system"})
_TURN_KEYS = {"sharegpt": ("from", "value"), "messages": ("role", "content")}


def apply_mapping(ds: "Dataset", mapping: Mapping[str, str] | None) -> "Dataset":
    """Rename columns so that ``mapping[name]`` becomes ``name`` (e.g. ``{"instruction": "question"}``).

    Raises:
        ConfigError: a key is not one of :data:`MAPPABLE`, or the rename would overwrite a column.
        MissingColumnError: a mapped column is not in the dataset.
    """
    if not mapping:
        return ds
    renames = {}
    for target, source in mapping.items():
        if target not in MAPPABLE:
            raise ConfigError(f"cannot map onto {target!r}", hint=f"map onto one of: {', '.join(MAPPABLE)}.")
        if source not in ds.column_names:
            raise MissingColumnError(source, ds.column_names, hint=f"the mapping {target}={source} names a column the dataset does not have.")
        if source == target:
            continue
        if target in ds.column_names and target not in mapping.values():
            raise ConfigError(
                f"mapping {target}={source} would overwrite the existing column {target!r}",
                hint=f"rename or drop {target!r} first, or map it elsewhere.",
            )
        renames[source] = target
    return ds.rename_columns(renames) if renames else ds


def detect_format(ds: "Dataset") -> Format:
    """The layout of ``ds``; every row must be in the same one.

    When the columns of several layouts are present, each row's layout is the first of
    ``instruction``, ``conversations``, ``messages`` that holds a value in that row (so a
    Magpie row with both ``instruction`` and ``conversations`` is read as Alpaca). Rows
    with none of them belong to the dataset's layout and are marked invalid later.

    Raises:
        MissingColumnError: no layout's column is present (the hint lists the layouts).
        FormatError: two rows are in different layouts (the error names both rows).
    """
    present = [f for f in FORMATS if _KEY_COLUMN[f] in ds.column_names]
    if not present:
        raise MissingColumnError(
            "instruction",
            ds.column_names,
            hint="no known layout: expected 'instruction' (Alpaca), 'conversations' (ShareGPT) or 'messages'; "
            "map other names with --map instruction=COLUMN (Python: mapping={'instruction': 'COLUMN'}).",
        )
    if len(present) == 1:
        return present[0]
    first: dict[Format, int] = {}
    columns = [_KEY_COLUMN[f] for f in present]
    for start, batch in _batches(ds.select_columns(columns)):
        for k in range(len(batch[columns[0]])):
            fmt = next((f for f in present if _has_value(batch[_KEY_COLUMN[f]][k])), None)
            if fmt is None or fmt in first:
                continue
            first[fmt] = start + k
            if len(first) > 1:
                (fa, ra), (fb, rb) = sorted(first.items(), key=lambda kv: kv[1])
                raise FormatError(
                    f"mixed formats: row {ra} is in {fa} layout ({_KEY_COLUMN[fa]!r}) but row {rb} is in {fb} layout ({_KEY_COLUMN[fb]!r})",
                    hint="convert the dataset to one layout first, or split it and run each part separately.",
                )
    return next(iter(first), present[0])


def to_alpaca(ds: "Dataset", mapping: Mapping[str, str] | None = None, *, format: str = "auto") -> "Dataset":
    """Return ``ds`` with ``instruction``, ``input`` and ``output`` columns, whatever its layout.

    Other columns are kept; a conversation column is replaced by the Alpaca columns (and
    ``system`` when a row has a system turn). ``format`` forces a layout (``"auto"`` detects it).

    Raises:
        ConfigError: an unknown ``format`` or a bad ``mapping``.
        MissingColumnError: a mapped column, or the forced layout's column, is absent.
        FormatError: mixed layouts.
        MissingColumnError: no known layout.
        InvalidRowError: a conversation that is not a list of turns, has an unknown role, or
            has no human turn (the error names the row).
    """
    if format != "auto" and format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}", hint=f"choose auto or one of: {', '.join(FORMATS)}.")
    ds = apply_mapping(ds, mapping)
    fmt: str
    if format == "auto":
        fmt = detect_format(ds)
    else:
        fmt = format
        if _KEY_COLUMN[fmt] not in ds.column_names:
            raise MissingColumnError(_KEY_COLUMN[fmt], ds.column_names, hint=f"the {fmt} layout needs it; map another column onto it with --map.")
    if fmt == "alpaca":
        return _complete_alpaca(ds)
    from datasets import Value

    column = _KEY_COLUMN[fmt]
    features: dict[str, Any] = {"instruction": Value("string"), "input": Value("string"), "output": Value("string"), "system": Value("string")}
    kept = [c for c in ("input", "output", "system") if c in ds.column_names]
    if kept:
        raise ConfigError(
            f"the {fmt} column {column!r} would overwrite the existing column(s) {kept}",
            hint="drop or rename them first.",
        )
    out = map_rows(ds, _conversation_to_alpaca, features, fn_kwargs={"fmt": fmt}, with_indices=True, remove_columns=[column], desc=f"Reading {fmt}")
    if all(v is None for v in out["system"]):
        out = out.remove_columns("system")
    return out


def _complete_alpaca(ds: "Dataset") -> "Dataset":
    from datasets import Value

    missing: dict[str, Any] = {}
    if "input" not in ds.column_names:
        missing["input"] = Value("string")
    if "output" not in ds.column_names:
        missing["output"] = Value("string")
    if not missing:
        return ds
    return map_rows(ds, _fill_alpaca, missing, fn_kwargs={"columns": list(missing)}, desc="Completing Alpaca columns")


def _fill_alpaca(batch: Batch, columns: list[str]) -> Batch:
    n = len(batch["instruction"])
    out: Batch = {}
    if "input" in columns:
        out["input"] = [""] * n
    if "output" in columns:
        out["output"] = list(batch["response"]) if "response" in batch else [None] * n
    return out


def _conversation_to_alpaca(batch: Batch, indices: list[int], fmt: str) -> Batch:
    column = _KEY_COLUMN[fmt]
    out: Batch = {"instruction": [], "input": [], "output": [], "system": []}
    extra_turns = 0
    for turns, row in zip(batch[column], indices):
        instruction, output, system, extra = read_conversation(turns, fmt, row)
        extra_turns += extra
        out["instruction"].append(instruction)
        out["input"].append("")
        out["output"].append(output)
        out["system"].append(system)
    if extra_turns:
        logger.warning("%d row(s) in this batch have turns after the first exchange; only the first exchange is used", extra_turns)
    return out


def read_conversation(turns: Any, fmt: str, row: int) -> tuple[str, str | None, str | None, int]:
    """``(instruction, output, system, 1 if there are later turns else 0)`` of one conversation.

    Raises:
        InvalidRowError: ``turns`` is not a list of turns, a role is unknown, or no human turn.
    """
    column = _KEY_COLUMN[fmt]
    role_key, text_key = _TURN_KEYS[fmt]
    if not isinstance(turns, list):
        raise InvalidRowError(row, column, f"expected a list of turns, got {type(turns).__name__}")
    roles = []
    for k, turn in enumerate(turns):
        if not isinstance(turn, Mapping) or role_key not in turn or text_key not in turn:
            raise InvalidRowError(row, column, f"turn {k} is not a {{{role_key!r}: ..., {text_key!r}: ...}} mapping: {turn!r:.80}")
        role = str(turn[role_key]).lower()
        if role not in HUMAN_ROLES | ASSISTANT_ROLES | SYSTEM_ROLES:
            raise InvalidRowError(
                row, column, f"turn {k} has the unknown {role_key} {turn[role_key]!r}", hint="known: human/user, gpt/assistant/model, system."
            )
        roles.append(role)
    human = next((k for k, role in enumerate(roles) if role in HUMAN_ROLES), None)
    if human is None:
        raise InvalidRowError(row, column, "the conversation has no human turn, so there is no instruction", hint="drop the row or fix its turns.")
    system = next((turns[k][text_key] for k in range(human) if roles[k] in SYSTEM_ROLES), None)
    answer = human + 1 if human + 1 < len(turns) and roles[human + 1] in ASSISTANT_ROLES else None
    output = turns[answer][text_key] if answer is not None else None
    last_used = answer if answer is not None else human
    return turns[human][text_key], output, system, int(last_used + 1 < len(turns))


def user_turn(instruction: str, input_text: str | None) -> str:
    """The user message for an instruction and its input."""
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def messages_for(instruction: str | None, input_text: str | None, output: str | None, system: str | None = None) -> list[dict[str, str]] | None:
    """The chat ``messages`` of one Alpaca row; None when there is no instruction.

    A row whose instruction is not a string (a list in a JSON seed file) gets None too: the
    transforms mark it ``invalid_input`` with the reason. An input, output or system value
    that is not a string is left out of the turns.
    """
    if not instruction or not isinstance(instruction, str):
        return None
    turns = [{"role": "system", "content": system}] if system and isinstance(system, str) else []
    turns.append({"role": "user", "content": user_turn(instruction, input_text if isinstance(input_text, str) else None)})
    if output and isinstance(output, str):
        turns.append({"role": "assistant", "content": output})
    return turns


def add_messages(ds: "Dataset", *, output_column: str = "output") -> "Dataset":
    """Add (or replace) the ``messages`` column from ``instruction``, ``input`` and ``output_column``.

    Rows without an instruction (failed or eliminated evolutions) get None; rows without an
    output get only the user turn.

    Raises:
        MissingColumnError: ``instruction`` is absent.
    """
    from datasets import List, Value

    if "instruction" not in ds.column_names:
        raise MissingColumnError("instruction", ds.column_names)
    features = {"messages": List({"role": Value("string"), "content": Value("string")})}
    return map_rows(ds, _messages_batch, features, fn_kwargs={"output_column": output_column}, batch_size=1000, desc="Writing messages")


def _messages_batch(batch: Batch, output_column: str) -> Batch:
    n = len(batch["instruction"])
    inputs = batch.get("input") or [None] * n
    outputs = batch.get(output_column) or [None] * n
    systems = batch.get("system") or [None] * n
    return {"messages": [messages_for(*values) for values in zip(batch["instruction"], inputs, outputs, systems)]}


def _has_value(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _batches(ds: "Dataset", size: int = 1000) -> Any:
    for k, batch in enumerate(ds.iter(batch_size=size)):
        yield k * size, batch
