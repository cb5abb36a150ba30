"""Registry of instance orderings by WSD score (SPEC §2), referred to by name from configs.

An ordering maps (ids, wsd, seed) to an int64 permutation of the positions 0..N-1: `ids[perm]` is the
training order. The order of ids it produces depends only on the set of (id, wsd) pairs and the seed,
never on the order the rows arrive in, so reordering an input file cannot change an experiment:

- ``nft`` (nearest first): ascending WSD, ties broken by ascending id.
- ``fft`` (farthest first): the exact reverse of ``nft``, so tied items come out in descending id order.
- ``rt`` (random): the items sorted by id, then shuffled with ``np.random.default_rng(seed)``.

    from dynamics.arrange.orderings import get_ordering
    perm = get_ordering("nft")(ids, scores.wsd, seed=0)
    ordered_ids = [ids[i] for i in perm]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np


class Ordering(Protocol):
    def __call__(self, ids: Sequence[str], wsd: np.ndarray, seed: int) -> np.ndarray:
        """Return an (N,) int64 permutation of positions 0..N-1."""
        ...


ORDERINGS: dict[str, Ordering] = {}


def register(name: str) -> Callable[[Ordering], Ordering]:
    """Decorator that registers an ordering under `name`; a name can be registered only once."""

    def decorate(ordering: Ordering) -> Ordering:
        if name in ORDERINGS:
            raise ValueError(f"an ordering named {name!r} is already registered")
        ORDERINGS[name] = ordering
        return ordering

    return decorate


def get_ordering(name: str) -> Ordering:
    """The ordering registered under `name`; ValueError naming the valid names otherwise."""
    if name in ORDERINGS:
        return ORDERINGS[name]
    valid = sorted(ORDERINGS)
    closest = difflib.get_close_matches(str(name), valid, n=1)
    hint = f"; did you mean {closest[0]!r}?" if closest else ""
    raise ValueError(f"unknown ordering {name!r}; valid orderings are {', '.join(valid)}{hint}")


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


def check_unique_ids(id_array: np.ndarray) -> None:
    """ValueError naming the first id that appears twice, with both rows."""
    # Ties and sampling order break by id, so two rows with one id would make the order depend on input order.
    by_id = np.argsort(id_array, kind="stable")
    repeated = np.flatnonzero(id_array[by_id][1:] == id_array[by_id][:-1])
    if repeated.size:
        rows = sorted(by_id[repeated[0] : repeated[0] + 2].tolist())
        raise ValueError(f"ids must be unique: {id_array[rows[0]]!r} appears at rows {rows[0]} and {rows[1]}")


def _validated(ids: Sequence[str], wsd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, wsd) as (N,) object and (N,) numeric arrays, after checks that make the order well defined."""
    id_array = string_array(ids, "ids")
    id_list = id_array.tolist()
    scores = np.asarray(wsd)
    if scores.ndim != 1:
        raise ValueError(f"wsd must be a 1-D array, got shape {scores.shape}")
    if scores.shape[0] != id_array.shape[0]:
        raise ValueError(f"ids and wsd differ in length: {id_array.shape[0]} ids, {scores.shape[0]} scores")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise ValueError(f"wsd must hold real numbers, got dtype {scores.dtype}")
    finite = np.isfinite(scores)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"wsd row {row} (id {id_list[row]!r}) is NaN or infinite")
    check_unique_ids(id_array)
    return id_array, scores


@register("nft")
def nearest_first(ids: Sequence[str], wsd: np.ndarray, seed: int) -> np.ndarray:
    """Ascending WSD (most test-like first), ties broken by ascending id; `seed` is unused."""
    id_array, scores = _validated(ids, wsd)
    # lexsort sorts by the last key first, so this is (wsd, then id); exact and stable.
    return np.lexsort((id_array, scores)).astype(np.int64)


@register("fft")
def farthest_first(ids: Sequence[str], wsd: np.ndarray, seed: int) -> np.ndarray:
    """The exact reverse of ``nft`` (descending WSD, ties by descending id); `seed` is unused."""
    return nearest_first(ids, wsd, seed)[::-1].copy()


@register("rt")
def random_order(ids: Sequence[str], wsd: np.ndarray, seed: int) -> np.ndarray:
    """A seeded shuffle of the items taken in id order; `wsd` is only checked, not used."""
    id_array, _ = _validated(ids, wsd)
    by_id = np.argsort(id_array, kind="stable").astype(np.int64)
    return by_id[np.random.default_rng(seed).permutation(by_id.shape[0])]
