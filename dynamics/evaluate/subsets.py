"""A seeded, task-stratified subset of an evaluation set: what a costly metric scores when the whole set is too much.

The original study scored 120 sampled items and its curves were noisy; a declared subset keeps every task's share
of the set (largest remainders, and at least one item of each task), so a macro average over tasks still covers
every task. Within a task the items are ranked by a seeded hash of their id: the subset does not depend on file
order, and the same seed picks the same items in every trial.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _rank(seed: int, item_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{item_id}".encode()).digest()


def task_quotas(counts: dict[str, int], size: int) -> dict[str, int]:
    """Items per task: one each, the rest proportional to task size by largest remainder (ties by task name)."""
    if size < len(counts):
        raise ValueError(f"a subset of {size} cannot hold one item of each of the {len(counts)} tasks")
    total = sum(counts.values())
    if size >= total:
        return dict(counts)
    quotas = {task: 1 for task in counts}
    spare = {task: count - 1 for task, count in counts.items()}
    room, spare_total = size - len(counts), sum(spare.values())
    shares = {task: room * spare[task] / spare_total if spare_total else 0.0 for task in counts}
    for task in counts:
        quotas[task] += int(shares[task])
    left = size - sum(quotas.values())
    by_remainder = sorted(counts, key=lambda task: (-(shares[task] - int(shares[task])), task))
    for task in by_remainder[:left]:
        quotas[task] += 1
    return quotas


def stratified_subset(ids: Sequence[str], tasks: Sequence[str], size: int | None, seed: int) -> list[int]:
    """Positions (ascending) of the items kept: all of them when `size` is None or not smaller than the set."""
    if len(ids) != len(tasks):
        raise ValueError(f"{len(ids)} ids but {len(tasks)} tasks")
    if size is None or size >= len(ids):
        return list(range(len(ids)))
    by_task: dict[str, list[int]] = {}
    for position, task in enumerate(tasks):
        by_task.setdefault(task, []).append(position)
    quotas = task_quotas({task: len(positions) for task, positions in by_task.items()}, size)
    kept: list[int] = []
    for task, positions in by_task.items():
        ranked = sorted(positions, key=lambda position: _rank(seed, ids[position]))
        kept.extend(ranked[: quotas[task]])
    return sorted(kept)
