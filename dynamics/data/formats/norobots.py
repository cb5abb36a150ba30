"""No Robots-style data (SPEC §1.2): `{prompt, prompt_id, messages: [{role, content}], category}`.

Roles are system, user and assistant (matched ignoring case); a leading system turn is dropped unless
`keep_system`, and turns are normalised as `dynamics.data.formats.turns` documents. `id` = `prompt_id`
(duplicates are reported by the framework); `task` = `category` = the record's `category`; `prompt` is not
read (it repeats the first user turn).
Split: the `split` option if given; otherwise `test` when the word "test" appears in the hub split name
(e.g. `test_sft`) or, for local files, in the file's path below the loaded folder (e.g. `test_sft.jsonl`,
`test/part-0.parquet`; "latest" does not count), else `train`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from dynamics.data.formats import LoadRequest, SourcedRow, register_format
from dynamics.data.formats.turns import (
    RawRecord,
    conversation_row,
    load_rows,
    read_turns,
    required_str,
    to_messages,
)
from dynamics.data.problems import ProblemLog

ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
TEST_WORD = re.compile(r"(?<![a-z])test(?![a-z])", re.IGNORECASE)
HUB_SPLIT = re.compile(r"\[([^\]]+)\]$")


class NoRobotsOptions(BaseModel):
    """Options of the `norobots` format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_system: bool = Field(False, description="Prepend a leading system turn to the first user turn, not drop it.")
    split: Literal["train", "test"] | None = Field(None, description="Split of every row; null: from file/split names.")


def split_from_name(file: str, location: str) -> str:
    """`test` if the hub split name or the file's path below `location` holds the word "test", else `train`."""
    path = Path(file)
    if path.is_file():
        root = Path(location)
        name = str(path.relative_to(root)) if root.is_dir() else path.name
    else:
        hub_split = HUB_SPLIT.search(file)
        name = hub_split.group(1) if hub_split else ""
    return "test" if TEST_WORD.search(name) else "train"


@register_format("norobots", NoRobotsOptions, disjoint_tasks=False)
def load_norobots(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    options = cast(NoRobotsOptions, request.options)
    split_of_file: dict[str, str] = {}

    def build(raw: RawRecord) -> dict:
        row_id = required_str(raw, "prompt_id")
        category = required_str(raw, "category")
        turns = read_turns(raw, "messages", ("role",), ("content",), ROLES)
        if raw.file not in split_of_file:
            split_of_file[raw.file] = options.split or split_from_name(raw.file, request.location)
        return conversation_row(
            row_id=row_id,
            source=request.name,
            task=category,
            category=category,
            split=split_of_file[raw.file],
            messages=to_messages(turns, options.keep_system, raw, "messages"),
        )

    return load_rows(request, log, build)
