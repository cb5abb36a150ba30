"""Sampling protocols of SPEC §1.3, declared in the config and applied to the loaded canonical table.

- `sample_per_task` (Study B): up to n rows per training task and m per test task, either a seeded random
  draw or the first rows in file order. The valid split is never sampled.
- `dynamics.data.recipes.apply_recipe` (Study A): a data-volume recipe over the train split.

Every random draw is a prefix of one seeded permutation per group (task or category) of that group's rows
sorted by id (`seeded_rows`), so results never depend on row or file order, and a draw that takes no more
rows of any group is a subset of one that takes more. Outputs keep the input's row order.

Config: `data: {…, sample: {mode: random, per_train_task: 20, per_test_task: 5}}`.
"""

from __future__ import annotations

import pyarrow as pa

from dynamics.config import SampleConfig
from dynamics.ids import shuffled_by_id, stable_seed


def seeded_rows(rows: list[int], ids: list[str], seed: int, key: str) -> list[int]:
    """`rows` (table indices of one group) in the seeded order of group `key`: sorted by id, then shuffled."""
    return [rows[i] for i in shuffled_by_id([ids[row] for row in rows], stable_seed(seed, key))]


def groups_of(table: pa.Table, column: str, split: str) -> dict[str, list[int]]:
    """Row indices of `split`, grouped by `column`, each list in table order."""
    groups: dict[str, list[int]] = {}
    splits = table.column("split").to_pylist()
    for row, (value, row_split) in enumerate(zip(table.column(column).to_pylist(), splits, strict=True)):
        if row_split == split:
            groups.setdefault(value, []).append(row)
    return groups


def kept_rows(table: pa.Table, keep: list[bool]) -> pa.Table:
    return table.filter(pa.array(keep, type=pa.bool_()))


def sample_per_task(table: pa.Table, config: SampleConfig, seed: int) -> pa.Table:
    """Up to `per_train_task` rows of each train task and `per_test_task` of each test task; valid untouched.

    'first' keeps each task's first rows in table order (loaders keep file order); 'random' keeps a prefix of
    the task's seeded permutation, so a smaller n gives a subset of a larger n.
    """
    ids = table.column("id").to_pylist()
    keep = [split not in ("train", "test") for split in table.column("split").to_pylist()]
    for split, limit in (("train", config.per_train_task), ("test", config.per_test_task)):
        for task, rows in groups_of(table, "task", split).items():
            ordered = rows if config.mode == "first" else seeded_rows(rows, ids, seed, task)
            for row in ordered[:limit]:
                keep[row] = True
    return kept_rows(table, keep)
