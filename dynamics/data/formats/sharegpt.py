"""ShareGPT-style conversations (SPEC §1.2): `{id, conversations: [{from: human|gpt|system, value}]}`.

Turns may also be written OpenAI-style, `{role: user|assistant|system, content}` (as many ShareGPT dumps
re-export them); keys and role names are matched ignoring case (`"from": "Human"`). Roles: human/user ->
user, gpt/assistant -> assistant, system -> system; a leading system turn is dropped unless `keep_system`
(then it is prepended to the first user turn), a system turn anywhere else is a row problem. Any other
speaker (ShareGPT also has e.g. "bing", "bard": replies of other assistants) is a row problem naming
`conversations[i].from`. Turns are normalised as `dynamics.data.formats.turns` documents (same-role runs
merged, leading replies dropped).
There is no task split: `task` = `category` = the record's `category` if it has one, else the source name;
every row gets the `split` option. A record without `id` gets "{source}-{file stem}-{index in file}".
The reference and answer are the final assistant reply.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from dynamics.data.formats import LoadRequest, SourcedRow, register_format
from dynamics.data.formats.turns import (
    RawRecord,
    conversation_row,
    derived_id,
    load_rows,
    optional_str,
    read_turns,
    to_messages,
)
from dynamics.data.problems import ProblemLog

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
ROLE_KEYS = ("from", "role")
CONTENT_KEYS = ("value", "content")


class ShareGPTOptions(BaseModel):
    """Options of the `sharegpt` format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_system: bool = Field(False, description="Prepend a leading system turn to the first user turn, not drop it.")
    split: Literal["train", "test"] = Field("train", description="Split of every row (ShareGPT has no task split).")


@register_format("sharegpt", ShareGPTOptions, disjoint_tasks=False)
def load_sharegpt(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    options = cast(ShareGPTOptions, request.options)

    def build(raw: RawRecord) -> dict:
        row_id = optional_str(raw, "id")
        task = optional_str(raw, "category") or request.name
        turns = read_turns(raw, "conversations", ROLE_KEYS, CONTENT_KEYS, ROLES)
        return conversation_row(
            row_id=row_id if row_id is not None else derived_id(request.name, raw),
            source=request.name,
            task=task,
            category=task,
            split=options.split,
            messages=to_messages(turns, options.keep_system, raw, "conversations"),
        )

    return load_rows(request, log, build)
