"""The canonical example schema (SPEC §1.1) that every loader produces, and its validation.

One row per example. Later stages read only these columns, so a new source needs only a loader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dynamics.ids import first_duplicate

ROLES = ("user", "assistant")
SPLITS = ("train", "valid", "test")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])

CANONICAL_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False),
        pa.field("references", pa.list_(pa.string()), nullable=False),
        pa.field("choices", pa.list_(pa.string()), nullable=True),
        pa.field("answer", pa.string(), nullable=True),
        pa.field("question_format", pa.int8(), nullable=True),
        pa.field("ability", pa.string(), nullable=True),  # the scorer an item is scored by (DoIT's `type`)
    ]
)


class SchemaError(ValueError):
    """A row does not fit the canonical schema; the message names origin, row and field."""


def row_problem(row: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, what was expected) for the first problem of `row` as a canonical example, or None if valid."""
    for field in ("id", "source", "task", "category", "split"):
        value = row.get(field)
        if not isinstance(value, str) or not value:
            return field, f"expected a non-empty string, got {value!r}"
    if row["split"] not in SPLITS:
        return "split", f"expected one of {list(SPLITS)}, got {row['split']!r}"
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages", "expected a non-empty list of {role, content}"
    for turn_index, turn in enumerate(messages):
        if not isinstance(turn, Mapping) or turn.get("role") not in ROLES:
            return f"messages[{turn_index}].role", f"expected one of {list(ROLES)}"
        if not isinstance(turn.get("content"), str):
            return f"messages[{turn_index}].content", "expected a string"
    if not any(turn["role"] == "assistant" and turn["content"].strip() for turn in messages):
        return "messages", "no non-empty assistant reply: nothing to train or score on"
    # Absent and null both mean "no references" (JSON loaders fill missing keys with null).
    references = row.get("references") or []
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        return "references", "expected a list of strings"
    return None


def validate_row(row: Mapping[str, Any], origin: str, row_number: int) -> None:
    """Raise SchemaError naming `origin`, the row (1-based `row_number`) and the field if `row` is not a
    canonical example."""
    problem = row_problem(row)
    if problem is not None:
        field, expected = problem
        raise SchemaError(f"{origin}: row {row_number}: field '{field}': {expected}")


def validate_rows(rows: Sequence[Mapping[str, Any]], origin: str) -> None:
    """Validate every row and reject duplicate ids, naming the first offending row (rows count from 1)."""
    for row_number, row in enumerate(rows, start=1):
        validate_row(row, origin, row_number)
    duplicate = first_duplicate([row["id"] for row in rows])
    if duplicate is not None:
        item, first, second = duplicate
        message = f"duplicate id {item!r} (first seen at row {first + 1})"
        raise SchemaError(f"{origin}: row {second + 1}: field 'id': {message}")


def to_table(rows: list[Mapping[str, Any]], origin: str) -> pa.Table:
    """Validate `rows` and build an Arrow table in the canonical schema (missing optionals become null)."""
    validate_rows(rows, origin)
    return build_table(rows)


def build_table(rows: list[Mapping[str, Any]]) -> pa.Table:
    """Arrow table of rows that were already validated (loaders check each row as they read it)."""
    columns = {name: [row.get(name) for row in rows] for name in CANONICAL_SCHEMA.names}
    columns["references"] = [value or [] for value in columns["references"]]
    return pa.table(columns, schema=CANONICAL_SCHEMA)


def split_of(table: pa.Table, split: str) -> pa.Table:
    """Rows of one split, in table order."""
    mask = pc.equal(table.column("split"), split)
    return table.filter(mask)
