"""Task-level orders of training items (SPEC §2, "Task-level permutations" and "Granularity").

Each function maps rows of (id, task[, vector]) to an (N,) int64 permutation of the positions 0..N-1:
`ids[perm]` is the training order. Like the instance orders in `wsd.py`, the result depends only on the set
of rows and the seed, never on the order the rows arrive in.

- ``round_robin``: tasks in a seeded order; each pass takes the next item of every task that still has one.
- ``cluster``: all items of a task together, tasks in the same seeded order as ``round_robin``.
- ``task_random``: Study B's task-level "random", a seeded shuffle of all items taken in id order; that is
  ``rt`` exactly, so it is registered as another name of ``rt``.
- ``coarse_nft``: tasks ordered by the WSD of their mean embedding (coarse NFT, or coarse FFT when
  reversed), expanded into their items.

The seeded task order is ``np.random.default_rng(seed).permutation`` applied to the sorted task names.
Within a task, items keep their *sampling order*: ascending id, or ascending `within_task` position when
that (N,) integer array is given (positions must then be unique within each task).

    from dynamics.arrange.orders.task_level import round_robin
    perm = round_robin(ids, tasks, seed=0)
    ordered_ids = [ids[i] for i in perm]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dynamics.arrange.orders import ORDERS, Order, Ordered, ScoredInputs
from dynamics.arrange.similarity import l2_normalise, score
from dynamics.ids import check_unique_ids, string_array


@dataclass(frozen=True)
class _Rows:
    """Validated rows; every array is indexed by input row unless named otherwise."""

    ids: np.ndarray  # (N,) object, str
    task_names: np.ndarray  # (T,) object, str, sorted ascending
    task: np.ndarray  # (N,) int64, index into task_names
    rank: np.ndarray  # (N,) int64, position of the row in its task's sampling order (0-based)


def _check_within_task(within_task: np.ndarray, n: int) -> np.ndarray:
    positions = np.asarray(within_task)
    if positions.ndim != 1 or positions.shape[0] != n:
        raise ValueError(
            f"within_task must be a 1-D array with one position per row ({n}), got shape {positions.shape}"
        )
    if not np.issubdtype(positions.dtype, np.integer):
        raise ValueError(f"within_task must hold integer sampling positions, got dtype {positions.dtype}")
    return positions.astype(np.int64)


def _validated(ids: Sequence[str], tasks: Sequence[str], within_task: np.ndarray | None) -> _Rows:
    id_array = string_array(ids, "ids")
    task_array = string_array(tasks, "tasks")
    if id_array.shape[0] != task_array.shape[0]:
        raise ValueError(f"ids and tasks differ in length: {id_array.shape[0]} ids, {task_array.shape[0]} tasks")
    if id_array.shape[0] == 0:
        raise ValueError("ids and tasks are empty: there are no items to order")
    check_unique_ids(id_array)
    task_names, task = np.unique(task_array, return_inverse=True)  # (T,) sorted, (N,)
    task = task.reshape(-1).astype(np.int64)
    # Sampling order: rows sorted by task, then position (when given), then id; lexsort keys run last-first.
    if within_task is None:
        grouped = np.lexsort((id_array, task))
    else:
        positions = _check_within_task(within_task, id_array.shape[0])
        grouped = np.lexsort((id_array, positions, task))
        same = np.flatnonzero(
            (task[grouped][1:] == task[grouped][:-1]) & (positions[grouped][1:] == positions[grouped][:-1])
        )
        if same.size:
            rows = sorted(grouped[same[0] : same[0] + 2].tolist())
            raise ValueError(
                f"within_task positions must be unique within a task: task {task_array[rows[0]]!r} has "
                f"position {int(positions[rows[0]])} at rows {rows[0]} and {rows[1]}"
            )
    counts = np.bincount(task, minlength=task_names.shape[0])  # (T,)
    starts = np.cumsum(counts) - counts  # (T,) first slot of each task in `grouped`
    rank = np.empty(id_array.shape[0], dtype=np.int64)
    rank[grouped] = np.arange(id_array.shape[0]) - starts[task[grouped]]
    return _Rows(ids=id_array, task_names=task_names, task=task, rank=rank)


def _seeded_task_order(num_tasks: int, seed: int) -> np.ndarray:
    """(T,) task indices (into the sorted names) in the seeded order."""
    return np.random.default_rng(seed).permutation(num_tasks).astype(np.int64)


def _slot_of_task(task_order: np.ndarray) -> np.ndarray:
    slot = np.empty_like(task_order)
    slot[task_order] = np.arange(task_order.shape[0])
    return slot  # (T,) position of each task in task_order


def _clustered(rows: _Rows, task_order: np.ndarray) -> np.ndarray:
    """All items of each task together, tasks in `task_order`, items in sampling order."""
    return np.lexsort((rows.rank, _slot_of_task(task_order)[rows.task])).astype(np.int64)


def round_robin(
    ids: Sequence[str], tasks: Sequence[str], seed: int, within_task: np.ndarray | None = None
) -> np.ndarray:
    """Pass k takes the k-th item (in sampling order) of every task that has one, tasks in the seeded order."""
    rows = _validated(ids, tasks, within_task)
    task_order = _seeded_task_order(rows.task_names.shape[0], seed)
    return np.lexsort((_slot_of_task(task_order)[rows.task], rows.rank)).astype(np.int64)


def cluster(ids: Sequence[str], tasks: Sequence[str], seed: int, within_task: np.ndarray | None = None) -> np.ndarray:
    """All items of a task together (in sampling order), tasks in the same seeded order as ``round_robin``."""
    rows = _validated(ids, tasks, within_task)
    return _clustered(rows, _seeded_task_order(rows.task_names.shape[0], seed))


def _task_means(rows: _Rows, train: np.ndarray) -> np.ndarray:
    """(T, d) float64 mean of each task's L2-normalised training vectors."""
    vectors = np.asarray(train)
    if vectors.ndim != 2 or vectors.shape[0] != rows.ids.shape[0]:
        raise ValueError(
            f"train must be a 2-D array with one row per id ({rows.ids.shape[0]} rows), got shape {vectors.shape}"
        )
    unit = l2_normalise(vectors, "train")  # (N, d) float32, L2-normalised
    # Summing each task in id order makes the means, and so near-ties, independent of input row order.
    by_task_then_id = np.lexsort((rows.ids, rows.task))
    counts = np.bincount(rows.task, minlength=rows.task_names.shape[0])  # (T,)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    means = np.empty((rows.task_names.shape[0], unit.shape[1]), dtype=np.float64)  # (T, d) float64
    for t in range(rows.task_names.shape[0]):
        members = by_task_then_id[bounds[t] : bounds[t + 1]]
        means[t] = unit[members].sum(axis=0, dtype=np.float64) / counts[t]
    norms = np.sqrt(np.einsum("ij,ij->i", means, means))  # (T,)
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise ValueError(
            f"task {rows.task_names[zero[0]]!r} has a mean embedding of zero norm (its instances cancel out), "
            "so its cosine similarity to the test set is undefined"
        )
    return means


def coarse_nft(
    ids: Sequence[str],
    tasks: Sequence[str],
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    w_min: float = 1.0,
    w_avg: float | None = None,
    reverse: bool = False,
    within_task: np.ndarray | None = None,
) -> np.ndarray:
    """Tasks by ascending WSD of their mean embedding (ties by task name), expanded into their items.

    `train` is (N, d), one row per id; `test` is (M, d). Each task's embedding is the mean of its items'
    L2-normalised vectors, scored with `similarity.score` against the test set (w_avg=None: the default
    ratio over tasks). `reverse=True` reverses the task order (coarse FFT); items always keep sampling
    order. `seed` is unused: the order is fully determined by the scores.
    """
    rows = _validated(ids, tasks, within_task)
    means = _task_means(rows, train)  # (T, d) float64
    wsd = score(means, test, w_min=w_min, w_avg=w_avg).wsd  # (T,) float32
    task_order = np.lexsort((rows.task_names, wsd)).astype(np.int64)
    if reverse:
        task_order = task_order[::-1].copy()
    return _clustered(rows, task_order)


def _coarse(reverse: bool) -> Callable[[ScoredInputs], Ordered]:
    def arrange(inputs: ScoredInputs) -> Ordered:
        settings = inputs.settings
        return Ordered(
            coarse_nft(
                inputs.ids, inputs.tasks, inputs.train, inputs.test, inputs.seed,
                w_min=settings.w_min, w_avg=settings.w_avg, reverse=reverse,
            )  # fmt: skip
        )

    return arrange


ORDERS.add(
    "round_robin",
    Order(
        "one item of every task per pass, tasks in a seeded order",
        lambda inputs: Ordered(round_robin(inputs.ids, inputs.tasks, inputs.seed)),
    ),
)
ORDERS.add(
    "cluster",
    Order(
        "all items of a task together, tasks in round_robin's seeded order",
        lambda inputs: Ordered(cluster(inputs.ids, inputs.tasks, inputs.seed)),
    ),
)
ORDERS.alias("task_random", "rt")
ORDERS.add("coarse_nft", Order("tasks by ascending WSD of their mean embedding, then their items", _coarse(False)))
ORDERS.add("coarse_fft", Order("coarse_nft's tasks in reverse, each task's items in sampling order", _coarse(True)))
