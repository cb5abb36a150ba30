"""Flan-mini (SPEC §1.2): `{id, source (task name), conversations: [{from: human|gpt, value}]}`.

`task` = `category` = the record's `source`. Only the first `max_turns` entries of `conversations` are read
(the study kept two: one prompt, one reply); they are normalised as `dynamics.data.formats.turns` documents,
with ShareGPT's roles (a leading system turn is dropped).
The split comes from a task split: `train_tasks` and `test_tasks` (text files, one task per line) or
`split_file` (the study's JSON `{"train_key_list": [...], "eval_key_list": [...]}`); a text list may start
with a UTF-8 BOM. Records of a task in neither list are left out, and a listed task without records is
missing from its split; both are reported (`ProblemLog.leave_out`), not errors, as the study's lists are
applied to data versions they may not match exactly. Without a task split every row is `train`.
A record without `id` gets "{source name}-{file stem}-{index in file}".
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dynamics.data.formats import LoadRequest, SourcedRow, register_format
from dynamics.data.formats.sharegpt import CONTENT_KEYS, ROLE_KEYS, ROLES
from dynamics.data.formats.turns import (
    RawRecord,
    conversation_row,
    derived_id,
    load_rows,
    optional_str,
    read_turns,
    to_messages,
)
from dynamics.data.problems import DataError, DataProblem, ProblemLog
from dynamics.data.records import read_json_document, read_text_lines

SHOWN_TASKS = 10  # task names quoted in one report line
SPLIT_KEYS = {"train": "train_key_list", "test": "eval_key_list"}


class FlanMiniOptions(BaseModel):
    """Options of the `flan_mini` format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_turns: int | None = Field(2, ge=1, description="Read only the first N turns (the study: 2); null reads all.")
    train_tasks: str | None = Field(None, description="Text file of training task names, one per line.")
    test_tasks: str | None = Field(None, description="Text file of test task names, one per line.")
    split_file: str | None = Field(None, description="JSON file with `train_key_list` and `eval_key_list`.")

    @model_validator(mode="after")
    def _one_task_split(self) -> FlanMiniOptions:
        if self.split_file is not None and (self.train_tasks or self.test_tasks):
            raise ValueError("give either split_file or train_tasks/test_tasks, not both")
        if (self.train_tasks is None) != (self.test_tasks is None):
            raise ValueError("train_tasks and test_tasks go together; give both or neither")
        return self


def _task_lines(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise DataError(DataProblem(path, "", "", "no such task list file"))
    return [line.strip() for line in read_text_lines(file) if line.strip()]


def _key_list(path: str, document: Any, key: str) -> list[str]:
    if not isinstance(document, dict):
        raise DataError(DataProblem(path, "", "", f"expected a JSON object, got {type(document).__name__}"))
    names = document.get(key)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise DataError(DataProblem(path, "", key, "expected a list of task names"))
    return names


def task_splits(options: FlanMiniOptions) -> dict[str, str] | None:
    """task -> split from the options' task split, or None when there is none; a task in both is an error."""
    if options.split_file is not None:
        document = read_json_document(Path(options.split_file))
        lists = {split: _key_list(options.split_file, document, key) for split, key in SPLIT_KEYS.items()}
        origin = options.split_file
    elif options.train_tasks is not None and options.test_tasks is not None:
        lists = {"train": _task_lines(options.train_tasks), "test": _task_lines(options.test_tasks)}
        origin = f"{options.train_tasks} and {options.test_tasks}"
    else:
        return None
    both = sorted(set(lists["train"]) & set(lists["test"]))
    if both:
        message = f"task(s) in both the train and test lists: {', '.join(both[:10])}"
        raise DataError(DataProblem(origin, "", "", message))
    return {task: split for split, tasks in lists.items() for task in tasks}


@register_format("flan_mini", FlanMiniOptions)
def load_flan_mini(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    options = cast(FlanMiniOptions, request.options)
    split_of_task = task_splits(options)
    left_out: Counter[str] = Counter()
    seen: set[str] = set()

    def build(raw: RawRecord) -> dict | None:
        task = optional_str(raw, "source")
        if task is None:
            raise raw.problem("source", "missing (the record's task name)")
        if not task:
            raise raw.problem("source", "empty (expected the record's task name)")
        seen.add(task)
        split = "train" if split_of_task is None else split_of_task.get(task)
        if split is None:
            left_out[task] += 1
            return None
        row_id = optional_str(raw, "id")
        turns = read_turns(raw, "conversations", ROLE_KEYS, CONTENT_KEYS, ROLES, limit=options.max_turns)
        return conversation_row(
            row_id=row_id if row_id is not None else derived_id(request.name, raw),
            source=request.name,
            task=task,
            category=task,
            split=split,
            messages=to_messages(turns, False, raw, "conversations"),
        )

    rows = load_rows(request, log, build)
    if split_of_task is not None:
        _report_unmatched(request.location, options, split_of_task, left_out, seen, log)
    return rows


def _report_unmatched(
    location: str,
    options: FlanMiniOptions,
    split_of_task: dict[str, str],
    left_out: Counter[str],
    seen: set[str],
    log: ProblemLog,
) -> None:
    """Report records of unlisted tasks (one summary) and each listed task that has no records."""
    if left_out:
        names = ", ".join(sorted(left_out)[:SHOWN_TASKS]) + (", ..." if len(left_out) > SHOWN_TASKS else "")
        message = (
            f"left out {sum(left_out.values())} record(s) of {len(left_out)} task(s) in neither the train nor "
            f"the test list: {names}"
        )
        log.leave_out(DataProblem(location, "", "source", message))
    for task, split in split_of_task.items():
        if task not in seen:
            file, key = _list_of(options, split)
            message = f"{split} task {task!r} is listed but has no records in {location}; the {split} split lacks it"
            log.leave_out(DataProblem(file, "", key, message))


def _list_of(options: FlanMiniOptions, split: str) -> tuple[str, str]:
    """(file, key) that lists the tasks of `split`."""
    if options.split_file is not None:
        return options.split_file, SPLIT_KEYS[split]
    return str(options.train_tasks if split == "train" else options.test_tasks), ""
