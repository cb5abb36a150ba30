"""What truncation does to each test task before any training: items cut, replies cut, items dropped.

Test loss is a macro average over tasks (SPEC §4), so a task that silently loses items shifts every curve, and one
that loses them all vanishes from the metrics while the sweep reports success. The census encodes the test set
exactly as the workers will (same tokenizer, template, `max_length` and truncation) on the driver, so planning can
say which tasks are affected and refuse a study in which one would be empty.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from dynamics.config import TrainConfig
from dynamics.text.encoding import EncodedExample, Truncation, encode
from dynamics.text.templates import Template


@dataclass(frozen=True)
class EncodedSplit:
    """The encoded examples of one split and what truncation did to them."""

    examples: list[EncodedExample]
    kept_positions: list[int]  # row of each example in the split's table
    prompt_cut: int  # examples that lost prompt tokens
    reply_cut: int  # examples that lost reply tokens (no prompt token was left to lose)
    dropped: list[int]  # rows left without any target token


def encode_split(table: pa.Table, tokenizer, template: Template, config: TrainConfig) -> EncodedSplit:
    """Encode every row of `table` under the configured truncation; dropped rows are listed, never lost."""
    truncation = Truncation.of(config)
    examples: list[EncodedExample] = []
    kept: list[int] = []
    dropped: list[int] = []
    prompt_cut = reply_cut = 0
    for row, messages in enumerate(table.column("messages").to_pylist()):
        example = encode(messages, tokenizer, template, config.max_length, truncation)
        if example is None:
            dropped.append(row)
            continue
        examples.append(example)
        kept.append(row)
        prompt_cut += example.prompt_tokens_cut > 0
        reply_cut += example.reply_tokens_cut > 0
    return EncodedSplit(examples, kept, prompt_cut, reply_cut, dropped)


@dataclass(frozen=True)
class TaskCensus:
    """One test task under one model's encoding."""

    task: str
    items: int
    prompt_cut: int  # items that lost prompt tokens (their whole reply is still scored)
    reply_cut: int  # items whose reply was cut from its end (scored on its head only)
    dropped: int  # items left without any target token: not scored at all

    @property
    def affected(self) -> bool:
        """True when the task's score no longer covers every reply token of every item."""
        return self.reply_cut > 0 or self.dropped > 0


@dataclass(frozen=True)
class TruncationCensus:
    """Per test task, in the order tasks first appear in the test set."""

    max_length: int
    tasks: tuple[TaskCensus, ...]

    def emptied(self) -> list[str]:
        """Tasks that lose every item: they would vanish from the macro average."""
        return [task.task for task in self.tasks if task.items and task.dropped == task.items]

    def lines(self, label: str = "test") -> list[str]:
        """One line per affected task, plus how many items lose prompt tokens (scored whole unless listed);
        `label` names the set ('test', or an evaluation set's name)."""
        lines = [
            f"{label} task {task.task}: {task.dropped} of {task.items} items dropped, {task.reply_cut} replies cut "
            f"at max_length {self.max_length}"
            for task in self.tasks
            if task.affected
        ]
        prompt_cut = sum(task.prompt_cut for task in self.tasks)
        if prompt_cut:
            items = sum(task.items for task in self.tasks)
            lines.append(f"{prompt_cut} of {items} {label} items lose prompt tokens at max_length {self.max_length}")
        return lines


def truncation_census(test: pa.Table, tokenizer, template: Template, config: TrainConfig) -> TruncationCensus:
    """Encode every row of `test` (columns task, messages) as a worker would and count per task."""
    split = encode_split(test, tokenizer, template, config)
    tasks = test.column("task").to_pylist()
    counts: dict[str, Counter[str]] = {task: Counter() for task in tasks}  # in order of first appearance
    for task in tasks:
        counts[task]["items"] += 1
    for row in split.dropped:
        counts[tasks[row]]["dropped"] += 1
    for row, example in zip(split.kept_positions, split.examples, strict=True):
        counts[tasks[row]]["prompt_cut"] += example.prompt_tokens_cut > 0
        counts[tasks[row]]["reply_cut"] += example.reply_tokens_cut > 0
    return TruncationCensus(
        config.max_length,
        tuple(
            TaskCensus(task, tally["items"], tally["prompt_cut"], tally["reply_cut"], tally["dropped"])
            for task, tally in counts.items()
        ),
    )
