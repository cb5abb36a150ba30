"""Instance-level orders by WSD score (SPEC §2): `nft`, `fft`, `rt`.

Each maps (ids, wsd, seed) to an int64 permutation of the positions 0..N-1: `ids[perm]` is the training
order. The order of ids depends only on the set of (id, wsd) pairs and the seed, never on the order the rows
arrive in, so reordering an input file cannot change an experiment:

- ``nft`` (nearest first): ascending WSD, ties broken by ascending id.
- ``fft`` (farthest first): the exact reverse of ``nft``, so tied items come out in descending id order.
- ``rt`` (random): the items sorted by id, then shuffled with ``np.random.default_rng(seed)``.

    from dynamics.arrange.orders.wsd import nearest_first
    perm = nearest_first(ids, scores.wsd, seed=0)
    ordered_ids = [ids[i] for i in perm]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dynamics.arrange.orders import ORDERS, Order, Ordered, ScoredInputs
from dynamics.ids import check_unique_ids, shuffled_by_id, string_array


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


def nearest_first(ids: Sequence[str], wsd: np.ndarray, seed: int) -> np.ndarray:
    """Ascending WSD (most test-like first), ties broken by ascending id; `seed` is unused."""
    id_array, scores = _validated(ids, wsd)
    # lexsort sorts by the last key first, so this is (wsd, then id); exact and stable.
    return np.lexsort((id_array, scores)).astype(np.int64)


def farthest_first(ids: Sequence[str], wsd: np.ndarray, seed: int) -> np.ndarray:
    """The exact reverse of ``nft`` (descending WSD, ties by descending id); `seed` is unused."""
    return nearest_first(ids, wsd, seed)[::-1].copy()


def random_order(ids: Sequence[str], wsd: np.ndarray, seed: int) -> np.ndarray:
    """A seeded shuffle of the items taken in id order; `wsd` is only checked, not used."""
    id_array, _ = _validated(ids, wsd)
    return shuffled_by_id(id_array, seed)


def _by_wsd(ordering: Callable[[Sequence[str], np.ndarray, int], np.ndarray]) -> Callable[[ScoredInputs], Ordered]:
    return lambda inputs: Ordered(ordering(inputs.ids, inputs.scores.wsd, inputs.seed))


ORDERS.add("nft", Order("nearest first: ascending WSD, ties by id", _by_wsd(nearest_first)))
ORDERS.add("fft", Order("farthest first: the exact reverse of nft", _by_wsd(farthest_first)))
ORDERS.add("rt", Order("random: a seeded shuffle of the items in id order", _by_wsd(random_order)))
