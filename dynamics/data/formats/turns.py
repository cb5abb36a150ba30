"""Shared by sharegpt, flan_mini, norobots, alpaca, dolly and p3: the per-record loading loop and turn handling.

Not a format itself (nothing registers here). Canonical messages always start with a user turn, alternate
user/assistant and end on a non-empty assistant reply, because templates and reply-only loss assume that
shape. Native data often does not, so `to_messages` normalises it in one documented way:

- one leading system turn is dropped, or, with `keep_system`, prepended to the first user turn;
  a system turn anywhere else is a row problem;
- consecutive turns of the same role are merged into one, their non-blank texts joined by a blank line;
- assistant turns before the first user turn are dropped (e.g. ShareGPT parts cut from a longer chat);
- a trailing user turn without a reply is dropped (no loss or reference can come from it);
- nothing left to reply to, or an empty final reply, is a row problem naming the conversation field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynamics.data.formats import LoadRequest, SourcedRow, checked_row
from dynamics.data.problems import DataError, DataProblem, ProblemLog
from dynamics.data.records import iter_source

SYSTEM = "system"
TURN_JOINER = "\n\n"


@dataclass(frozen=True)
class Turn:
    """One native turn with its canonical role ("system", "user" or "assistant")."""

    role: str
    content: str
    field: str  # where the role came from, e.g. "conversations[3].from"


@dataclass(frozen=True)
class RawRecord:
    """One native record and its place: the file, "row 3"/"line 4", and its index in the file and source."""

    file: str
    where: str
    record: Mapping[str, Any]
    index_in_file: int
    index_in_source: int

    def problem(self, field: str, message: str) -> DataError:
        return DataError(DataProblem(self.file, self.where, field, message))


def read_turns(
    raw: RawRecord,
    list_field: str,
    role_keys: tuple[str, ...],
    content_keys: tuple[str, ...],
    roles: Mapping[str, str],
    limit: int | None = None,
) -> list[Turn]:
    """The first `limit` (default all) turns of `raw.record[list_field]`, roles mapped by `roles`.

    Each turn's role is under the first of `role_keys` it has and its text under the first of `content_keys`
    (dumps differ: ShareGPT's `from`/`value`, OpenAI's `role`/`content`); keys and role names are matched
    case-insensitively (`From: "Human"`), as `roles` holds lower-case names. A bad turn raises naming
    `list_field[i].key`; turns past `limit` are not read.
    """
    turns = raw.record.get(list_field)
    if turns is None:
        raise raw.problem(list_field, "missing")
    if not isinstance(turns, list):
        raise raw.problem(list_field, f"expected a list of turns, got {type(turns).__name__}")
    if not turns:
        raise raw.problem(list_field, "empty: a conversation needs at least one user turn and one reply")
    result = []
    for index, turn in enumerate(turns[:limit]):
        place = f"{list_field}[{index}]"
        if not isinstance(turn, Mapping):
            raise raw.problem(place, f"expected an object, got {type(turn).__name__}")
        role_key, content_key = _spelled(turn, role_keys), _spelled(turn, content_keys)
        role = turn[role_key] if role_key is not None else None
        content = turn[content_key] if content_key is not None else None
        if role is None:
            raise raw.problem(f"{place}.{role_key or role_keys[0]}", _missing(role_keys))
        role_field = f"{place}.{role_key}"
        if not isinstance(role, str):
            raise raw.problem(role_field, f"expected a role name (str), got {type(role).__name__}")
        canonical = roles.get(role) or roles.get(role.lower())
        if canonical is None:
            raise raw.problem(role_field, f"unknown role {role!r}; expected one of {sorted(roles)}")
        if content is None:
            raise raw.problem(f"{place}.{content_key or content_keys[0]}", _missing(content_keys))
        if not isinstance(content, str):
            raise raw.problem(f"{place}.{content_key}", f"expected str, got {type(content).__name__}")
        result.append(Turn(canonical, content, role_field))
    return result


def _spelled(turn: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """The turn's own spelling of the first of `names` it has (exact first, then ignoring case), or None."""
    for name in names:
        if name in turn:
            return name
    lowered = {key.lower(): key for key in turn if isinstance(key, str)}
    return next((lowered[name] for name in names if name in lowered), None)


def _missing(names: tuple[str, ...]) -> str:
    if len(names) == 1:
        return "missing"
    return f"missing (expected one of {', '.join(map(repr, names))})"


def to_messages(turns: list[Turn], keep_system: bool, raw: RawRecord, list_field: str) -> list[dict[str, str]]:
    """Canonical messages from native turns, normalised as the module docstring says."""
    system = turns[0].content if turns and turns[0].role == SYSTEM else None
    rest = turns[1:] if system is not None else turns
    merged: list[list[Any]] = []  # [role, [texts]]
    for turn in rest:
        if turn.role == SYSTEM:
            raise raw.problem(turn.field, "a system turn is allowed only as the first turn")
        if merged and merged[-1][0] == turn.role:
            merged[-1][1].append(turn.content)
        else:
            merged.append([turn.role, [turn.content]])
    while merged and merged[0][0] == "assistant":
        merged.pop(0)
    if not merged:
        raise raw.problem(list_field, "no user turn: nothing for a reply to answer")
    if merged[-1][0] == "user":
        merged.pop()
    if not merged:
        raise raw.problem(list_field, "no assistant reply to a user turn")
    messages = [{"role": role, "content": _joined(texts)} for role, texts in merged]
    if not messages[-1]["content"].strip():
        raise raw.problem(list_field, "the final assistant reply is empty")
    if keep_system and system is not None and system.strip():
        messages[0]["content"] = _joined([system, messages[0]["content"]])
    return messages


def _joined(texts: list[str]) -> str:
    if len(texts) == 1:
        return texts[0]
    return TURN_JOINER.join(text for text in texts if text.strip())


def conversation_row(
    *, row_id: str, source: str, task: str, category: str, split: str, messages: list[dict[str, str]]
) -> dict[str, Any]:
    """A canonical row whose reference and answer are the final assistant reply."""
    reply = messages[-1]["content"]
    return {
        "id": row_id,
        "source": source,
        "task": task,
        "category": category,
        "split": split,
        "messages": messages,
        "references": [reply],
        "answer": reply,
    }


def instruction_exchange(raw: RawRecord, instruction: str, extra: str, reply: str) -> list[dict[str, str]]:
    """One exchange from an instruction record (Alpaca, Dolly): the user turn is field `instruction`, then a
    blank line and field `extra` when that is not blank (missing or null counts as blank); the reply is field
    `reply`. A missing or blank instruction or reply is a row problem naming the field."""
    prompt = required_str(raw, instruction)
    if not prompt.strip():
        raise raw.problem(instruction, "empty")
    more = optional_str(raw, extra) or ""
    answer = required_str(raw, reply)
    if not answer.strip():
        raise raw.problem(reply, "empty: nothing to train or score on")
    user = prompt + "\n\n" + more if more.strip() else prompt
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def derived_id(name: str, raw: RawRecord) -> str:
    """An id for a record without one: source name, file stem and the record's index in its file."""
    return f"{name}-{Path(raw.file).stem}-{raw.index_in_file}"


def required_str(raw: RawRecord, field: str) -> str:
    """`record[field]`, which must be present and a str; otherwise raises naming it."""
    value = optional_str(raw, field)
    if value is None:
        raise raw.problem(field, "missing")
    return value


def optional_str(raw: RawRecord, field: str) -> str | None:
    """`record[field]` if present (None when absent or null); any other type than str raises naming it."""
    value = raw.record.get(field)
    if value is not None and not isinstance(value, str):
        raise raw.problem(field, f"expected str, got {type(value).__name__}")
    return value


def raw_records(request: LoadRequest, log: ProblemLog) -> Iterator[RawRecord]:
    """Every native record of the request's files (sorted) or hub dataset, numbered per file and overall."""
    per_file: dict[str, int] = {}
    for index, (file, where, record) in enumerate(iter_source(request.location, log, request.hub_config)):
        index_in_file = per_file.get(file, 0)
        per_file[file] = index_in_file + 1
        yield RawRecord(file, where, record, index_in_file, index)


def load_rows(
    request: LoadRequest, log: ProblemLog, build: Callable[[RawRecord], dict[str, Any] | None]
) -> list[SourcedRow]:
    """`build` applied to every record; a DataError it raises is a row problem (raised or skipped by `log`).

    `build` returns None for a record it leaves out on purpose (e.g. a task in no split).
    """
    rows = []
    for raw in raw_records(request, log):
        try:
            row = build(raw)
        except DataError as error:
            log.report(error.problem or DataProblem(raw.file, raw.where, "", str(error)))
            continue
        if row is not None and checked_row(row, raw.file, raw.where, log) is not None:
            rows.append((raw.file, raw.where, row))
    return rows
