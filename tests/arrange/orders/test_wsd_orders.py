"""The instance-level orders by WSD (dynamics.arrange.orders.wsd): nft, fft, rt."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.arrange.orders import ORDERS
from dynamics.arrange.orders.wsd import farthest_first, nearest_first, random_order

ORDERINGS = {"nft": nearest_first, "fft": farthest_first, "rt": random_order}
NAMES = list(ORDERINGS)


def get_ordering(name: str):
    return ORDERINGS[name]


def ordered_ids(name: str, ids: list[str], wsd: np.ndarray, seed: int = 0) -> list[str]:
    perm = get_ordering(name)(ids, wsd, seed)
    return [ids[i] for i in perm]


@st.composite
def ids_and_tied_scores(draw: st.DrawFn) -> tuple[list[str], np.ndarray]:
    """Unique ids with WSD values from a handful of levels, so ties are common."""
    ids = draw(st.lists(st.text(min_size=1, max_size=4), min_size=0, max_size=40, unique=True))
    levels = st.sampled_from([-1.5, -0.25, 0.0, 0.25, 3.0])
    wsd = draw(st.lists(levels, min_size=len(ids), max_size=len(ids)))
    return ids, np.asarray(wsd, dtype=np.float32)


def test_the_three_wsd_orders_are_registered() -> None:
    assert set(NAMES) <= set(ORDERS.names())


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=100, deadline=None)
@given(data=ids_and_tied_scores(), seed=st.integers(0, 2**32 - 1))
def test_orderings_are_permutations(name: str, data: tuple[list[str], np.ndarray], seed: int) -> None:
    ids, wsd = data
    perm = get_ordering(name)(ids, wsd, seed)
    assert perm.dtype == np.int64
    np.testing.assert_array_equal(np.sort(perm), np.arange(len(ids)))


@settings(max_examples=200, deadline=None)
@given(data=ids_and_tied_scores())
def test_nft_ascends_and_breaks_ties_by_id(data: tuple[list[str], np.ndarray]) -> None:
    ids, wsd = data
    perm = get_ordering("nft")(ids, wsd, 0)
    keys = [(float(wsd[i]), ids[i]) for i in perm]
    assert keys == sorted(keys)


@settings(max_examples=200, deadline=None)
@given(data=ids_and_tied_scores(), seed=st.integers(0, 100))
def test_fft_is_exact_reverse_of_nft(data: tuple[list[str], np.ndarray], seed: int) -> None:
    ids, wsd = data
    nft = get_ordering("nft")(ids, wsd, seed)
    fft = get_ordering("fft")(ids, wsd, seed)
    np.testing.assert_array_equal(fft, nft[::-1])


def test_worked_example_with_ties() -> None:
    ids = ["b", "a", "c", "d", "e"]
    wsd = np.array([1.0, 1.0, 0.0, 2.0, 1.0], dtype=np.float32)
    assert ordered_ids("nft", ids, wsd) == ["c", "a", "b", "e", "d"]
    assert ordered_ids("fft", ids, wsd) == ["d", "e", "b", "a", "c"]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=100, deadline=None)
@given(data=ids_and_tied_scores(), seed=st.integers(0, 2**32 - 1), shuffle_seed=st.integers(0, 2**32 - 1))
def test_order_does_not_depend_on_input_row_order(
    name: str, data: tuple[list[str], np.ndarray], seed: int, shuffle_seed: int
) -> None:
    ids, wsd = data
    rows = np.random.default_rng(shuffle_seed).permutation(len(ids))
    shuffled_ids = [ids[i] for i in rows]
    shuffled_wsd = wsd[rows]
    assert ordered_ids(name, shuffled_ids, shuffled_wsd, seed) == ordered_ids(name, ids, wsd, seed)


def test_rt_same_seed_same_order_different_seed_different_order() -> None:
    ids = [f"ex-{i:03d}" for i in range(60)]
    wsd = np.zeros(60, dtype=np.float32)
    rt = get_ordering("rt")
    np.testing.assert_array_equal(rt(ids, wsd, 7), rt(ids, wsd, 7))
    assert not np.array_equal(rt(ids, wsd, 7), rt(ids, wsd, 8))
    # A shuffle, not an ordering by id or by score.
    assert ordered_ids("rt", ids, wsd, 7) != sorted(ids)


def test_ids_that_differ_only_by_trailing_nul_stay_distinct() -> None:
    ids = ["a\x00", "a"]
    assert ordered_ids("nft", ids, np.zeros(2)) == ["a", "a\x00"]


def test_rt_shuffles_items_taken_in_id_order() -> None:
    ids = ["c", "a", "d", "b"]
    wsd = np.array([0.3, 0.1, 0.4, 0.2])
    expected = [sorted(ids)[i] for i in np.random.default_rng(11).permutation(4)]
    assert ordered_ids("rt", ids, wsd, 11) == expected


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_errors_that_name_the_row(name: str) -> None:
    ordering = get_ordering(name)
    with pytest.raises(ValueError, match=r"'a' appears at rows 0 and 2"):
        ordering(["a", "b", "a"], np.zeros(3), 0)
    with pytest.raises(ValueError, match=r"3 ids, 2 scores"):
        ordering(["a", "b", "c"], np.zeros(2), 0)
    with pytest.raises(ValueError, match=r"wsd row 1 \(id 'b'\) is NaN"):
        ordering(["a", "b"], np.array([0.0, np.nan]), 0)
    with pytest.raises(ValueError, match=r"ids row 1 must be a string"):
        ordering(["a", 2], np.zeros(2), 0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"wsd must be a 1-D array"):
        ordering(["a", "b"], np.zeros((2, 1)), 0)
