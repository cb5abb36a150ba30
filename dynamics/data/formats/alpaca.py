"""Alpaca-style data (SPEC §1.2): `{instruction, input, output}` plus optional fields.

One exchange per record: the user turn is the instruction, followed by a blank line and the input when the
input is not blank (a missing or null input counts as empty); the reply is the output, which must not be
empty. `id` = the record's `id` if it has one, else "{source name}-{index}" with the index counted over the
whole source in sorted file order (stable while the same files are loaded). `task` = the record's `task`,
else its `category`, else the source name; `category` = the record's `category`, else the task. Every row
gets the `split` option.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from dynamics.data.formats import LoadRequest, SourcedRow, register_format
from dynamics.data.formats.turns import RawRecord, conversation_row, instruction_exchange, load_rows, optional_str
from dynamics.data.problems import ProblemLog


class AlpacaOptions(BaseModel):
    """Options of the `alpaca` format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: Literal["train", "test"] = Field("train", description="Split of every row (Alpaca has no task split).")


@register_format("alpaca", AlpacaOptions, disjoint_tasks=False)
def load_alpaca(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    options = cast(AlpacaOptions, request.options)

    def build(raw: RawRecord) -> dict:
        messages = instruction_exchange(raw, instruction="instruction", extra="input", reply="output")
        row_id = optional_str(raw, "id")
        category = optional_str(raw, "category")
        task = optional_str(raw, "task") or category or request.name
        return conversation_row(
            row_id=row_id if row_id is not None else f"{request.name}-{raw.index_in_source}",
            source=request.name,
            task=task,
            category=category or task,
            split=options.split,
            messages=messages,
        )

    return load_rows(request, log, build)
