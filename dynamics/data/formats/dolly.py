"""Dolly-style data (databricks-dolly-15k): `{instruction, context, response, category}` per record.

One exchange per record: the user turn is the instruction, followed by a blank line and the context when the
context is not blank; the reply is the response, which must not be empty. Dolly's eight categories
(`open_qa`, `closed_qa`, `information_extraction`, `summarization`, `brainstorming`, `classification`,
`creative_writing`, `general_qa`) are each row's `task` and `category`, so loss and scores come per category;
`test_categories` holds whole categories out as the test split (a zero-shot split by task); an entry that
names no category of the data holds nothing out and is reported (`ProblemLog.leave_out`).
`id` = "{source name}-{index}", the index counted over the whole source in sorted file order.

    data: {source: dolly, path: databricks/databricks-dolly-15k, options: {test_categories: [summarization]}}
"""

from __future__ import annotations

from typing import cast

from pydantic import BaseModel, ConfigDict, Field

from dynamics.data.formats import LoadRequest, SourcedRow, register_format
from dynamics.data.formats.turns import RawRecord, conversation_row, instruction_exchange, load_rows, required_str
from dynamics.data.problems import DataProblem, ProblemLog


class DollyOptions(BaseModel):
    """Options of the `dolly` format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    test_categories: list[str] = Field([], description="Categories whose rows are the test split; the rest train.")


@register_format("dolly", DollyOptions, disjoint_tasks=False)
def load_dolly(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    options = cast(DollyOptions, request.options)
    seen: set[str] = set()

    def build(raw: RawRecord) -> dict:
        messages = instruction_exchange(raw, instruction="instruction", extra="context", reply="response")
        category = required_str(raw, "category")
        if not category.strip():
            raise raw.problem("category", "empty")
        seen.add(category)
        return conversation_row(
            row_id=f"{request.name}-{raw.index_in_source}",
            source=request.name,
            task=category,
            category=category,
            split="test" if category in options.test_categories else "train",
            messages=messages,
        )

    rows = load_rows(request, log, build)
    for category in options.test_categories:
        if category not in seen:
            message = f"options.test_categories entry {category!r} is no category of the data; nothing is held out"
            log.leave_out(DataProblem(request.location, "", "", message))
    return rows
