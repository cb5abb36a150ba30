"""Item ids: what every order, sample and subset sorts, checks and shuffles by.

Orders and data subsets must depend only on the set of items and the seed, never on the order rows arrive in.
So everything random starts from the items sorted by id (ids are unique, checked here) and draws from a
seed derived from the user's seed and a stable key (`stable_seed`: the same on every machine and run).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def stable_seed(seed: int, key: str, byteorder: Literal["little", "big"] = "little") -> int:
    """A 64-bit seed for one group (a task, a category), the same on every machine and Python run.

    The built-in generator reads the digest big-endian (how its tasks were first drawn); everything else
    little-endian. Changing either changes data.
    """
    digest = hashlib.sha256(f"{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], byteorder)


def string_array(values: Sequence[str], name: str) -> np.ndarray:
    """(N,) object array of `values`, each checked to be a str (named by `name` and row in errors)."""
    items = list(values)
    for row, item in enumerate(items):
        if not isinstance(item, str):
            raise ValueError(f"{name} row {row} must be a string, got {type(item).__name__} {item!r}")
    # Object dtype keeps Python's str ordering and every character; numpy's fixed-width unicode dtype
    # would drop trailing NUL characters and could merge distinct names.
    array = np.empty(len(items), dtype=object)  # (N,) str
    array[:] = items
    return array


def first_duplicate(ids: Sequence[str] | np.ndarray | pa.Array | pa.ChunkedArray) -> tuple[str, int, int] | None:
    """(id, first row, second row) of the first row whose id an earlier row already has, or None."""
    if isinstance(ids, pa.Array | pa.ChunkedArray):
        counts = pc.value_counts(ids)
        if len(counts) == len(ids):  # hash-based, in C++: the usual answer at a million rows in milliseconds
            return None
        ids = ids.to_pylist()
    first_row: dict[str, int] = {}
    for row, item in enumerate(ids):
        previous = first_row.setdefault(item, row)
        if previous != row:
            return item, previous, row
    return None


def check_unique_ids(ids: Sequence[str] | np.ndarray, name: str = "ids") -> None:
    """ValueError naming the first id that appears twice, with both rows."""
    duplicate = first_duplicate(ids)
    if duplicate is not None:
        item, first, second = duplicate
        raise ValueError(f"{name} must be unique: {item!r} appears at rows {first} and {second}")


def by_id(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """(N,) int64 positions of `ids` in ascending id order (an array of id ranks sorts the same way)."""
    keys = ids if isinstance(ids, np.ndarray) else np.asarray(ids, dtype=object)
    return np.argsort(keys, kind="stable").astype(np.int64)


def shuffled_by_id(ids: Sequence[str] | np.ndarray, seed: int) -> np.ndarray:
    """(N,) int64 positions: the items in id order, then shuffled by `np.random.default_rng(seed)`.

    The one seeded shuffle of the package (random orders, per-task samples, volume subsets): a prefix of it
    is a seeded sample, and it cannot depend on the order the ids arrive in.
    """
    ordered = by_id(ids)
    return ordered[np.random.default_rng(seed).permutation(ordered.shape[0])]
