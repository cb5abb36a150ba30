"""P3 prompted tasks (SPEC §1.2), in either of two layouts, told apart record by record:

- native P3: `inputs_pretokenized` (user turn), `targets_pretokenized` (reply) and the task name in the
  field named by `task_field`; a hub load without that field uses the hub configuration name (P3 names
  one configuration per prompted task);
- the GPT-3 fine-tuning layout of yizhongw/self-instruct's T0 slice, one file per task
  (`data_per_template/<dataset>_<template>.jsonl`): `prompt` (user turn) and `completion` (reply, with its
  trailing "<|endoftext|>" removed); the task is the file name without its suffix.

`category` = `task`. A task is `test` when it equals an entry of `test_tasks` or starts with an entry
followed by "_" (so T0's held-out dataset `super_glue_cb` covers every prompt of it), else `train`; an
entry that matches no loaded task holds nothing out and is reported (`ProblemLog.leave_out`): T0's list
names datasets a slice may not have, so it is not an error.
Records have no id: each gets "{source name}-{file stem}-{index in file}".
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from pydantic import BaseModel, ConfigDict, Field

from dynamics.data.formats import LoadRequest, SourcedRow, register_format
from dynamics.data.formats.turns import RawRecord, conversation_row, derived_id, load_rows, required_str
from dynamics.data.problems import DataProblem, ProblemLog

END_OF_TEXT = "<|endoftext|>"
NATIVE_FIELDS = ("inputs_pretokenized", "targets_pretokenized")
REFORMATTED_FIELDS = ("prompt", "completion")


class P3Options(BaseModel):
    """Options of the `p3` format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_field: str = Field("task_name", description="Field holding the task name in native P3 records.")
    test_tasks: tuple[str, ...] = Field((), description="Held-out tasks (T0's list), exact or as a name prefix.")


def is_held_out(task: str, test_tasks: tuple[str, ...]) -> bool:
    """Whether `task` is one of `test_tasks` or a prompt of one (a name prefix followed by "_")."""
    return any(_covers(held_out, task) for held_out in test_tasks)


def _covers(held_out: str, task: str) -> bool:
    return task == held_out or task.startswith(held_out + "_")


def _native(raw: RawRecord, request: LoadRequest, task_field: str) -> tuple[str, str, str]:
    prompt, target = (required_str(raw, field) for field in NATIVE_FIELDS)
    task = raw.record.get(task_field)
    if task is None and request.hub_config and not Path(raw.file).is_file():
        task = request.hub_config
    if task is None:
        raise raw.problem(task_field, "missing (the task name; see the `task_field` option)")
    if not isinstance(task, str) or not task:
        raise raw.problem(task_field, f"expected a non-empty task name, got {task!r}")
    return task, prompt, target


def _reformatted(raw: RawRecord) -> tuple[str, str, str]:
    prompt, completion = (required_str(raw, field) for field in REFORMATTED_FIELDS)
    return Path(raw.file).stem, prompt, completion.removesuffix(END_OF_TEXT)


@register_format("p3", P3Options)
def load_p3(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    options = cast(P3Options, request.options)
    seen: set[str] = set()

    def build(raw: RawRecord) -> dict:
        native = any(raw.record.get(field) is not None for field in NATIVE_FIELDS)
        reformatted = any(raw.record.get(field) is not None for field in REFORMATTED_FIELDS)
        if reformatted and not native:
            task, prompt, target = _reformatted(raw)
            target_field = "completion"
        else:
            task, prompt, target = _native(raw, request, options.task_field)
            target_field = "targets_pretokenized"
        seen.add(task)
        if not target.strip():
            raise raw.problem(target_field, "empty: nothing to train or score on")
        return conversation_row(
            row_id=derived_id(request.name, raw),
            source=request.name,
            task=task,
            category=task,
            split="test" if is_held_out(task, options.test_tasks) else "train",
            messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": target}],
        )

    rows = load_rows(request, log, build)
    for held_out in options.test_tasks:
        if not any(_covers(held_out, task) for task in seen):
            message = f"options.test_tasks entry {held_out!r} matches no task of the source; nothing is held out for it"
            log.leave_out(DataProblem(request.location, "", "", message))
    return rows
