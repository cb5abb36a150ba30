"""Vectorised canonical-schema checks over a whole Arrow table, for the fast load path.

They flag which rows are bad; the per-row `schema.row_problem` then says exactly why for those rows only,
so a clean million-row file never round-trips through Python objects.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dynamics.data.schema import CANONICAL_SCHEMA, ROLES, SPLITS

REQUIRED_STRINGS = ("id", "source", "task", "category", "split")
OPTIONAL = ("references", "choices", "answer", "question_format", "ability")


def conform(table: pa.Table) -> pa.Table | None:
    """`table` cast to the canonical schema (missing optional columns as nulls), or None if it cannot be."""
    if not set(REQUIRED_STRINGS) | {"messages"} <= set(table.column_names):
        return None
    columns = []
    for field in CANONICAL_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
        elif field.name in OPTIONAL:
            column = pa.nulls(table.num_rows, field.type)
        else:
            return None
        try:
            column = column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
        if field.name == "references":  # absent or null means "no references"
            column = pc.if_else(pc.is_null(column), pa.scalar([], field.type), column)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=CANONICAL_SCHEMA)


def invalid_rows(table: pa.Table) -> np.ndarray:
    """Indices of rows of a conformed table that break the canonical schema."""
    bad = np.zeros(table.num_rows, dtype=bool)
    for name in REQUIRED_STRINGS:
        column = table.column(name)
        bad |= pc.fill_null(pc.equal(pc.utf8_length(column), 0), True).to_numpy(zero_copy_only=False)
    bad |= ~pc.fill_null(pc.is_in(table.column("split"), pa.array(SPLITS)), False).to_numpy(zero_copy_only=False)

    messages = table.column("messages").combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(messages), 0).to_numpy(zero_copy_only=False)
    bad |= lengths == 0
    turns = pc.list_flatten(messages)  # (total turns,) struct<role, content>
    parents = pc.list_parent_indices(messages).to_numpy(zero_copy_only=False)
    roles, contents = turns.field("role"), turns.field("content")
    bad_turn = ~pc.fill_null(pc.is_in(roles, pa.array(ROLES)), False).to_numpy(zero_copy_only=False)
    bad_turn |= pc.is_null(contents).to_numpy(zero_copy_only=False)
    bad[parents[bad_turn]] = True
    replies = pc.and_(pc.equal(roles, "assistant"), pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(contents)), 0))
    has_reply = np.zeros(table.num_rows, dtype=bool)
    has_reply[parents[pc.fill_null(replies, False).to_numpy(zero_copy_only=False)]] = True
    bad |= ~has_reply

    references = table.column("references").combine_chunks()
    if len(references) and references.null_count < len(references):
        flat = pc.list_flatten(references)
        null_items = pc.is_null(flat).to_numpy(zero_copy_only=False)
        bad[pc.list_parent_indices(references).to_numpy(zero_copy_only=False)[null_items]] = True
    return np.flatnonzero(bad)
