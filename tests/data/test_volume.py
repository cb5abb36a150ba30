"""Tests for nested, stratified data-volume subsets (dynamics.data.volume, SPEC §1.3).

Run: `python -m pytest -q tests/data/test_volume.py`
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.data.builtin import generate_builtin
from dynamics.data.schema import split_of
from dynamics.data.volume import sample_volume, volume_order

VOLUMES = (10, 40, 160, 640)


@pytest.fixture(scope="module")
def pool() -> pa.Table:
    return split_of(generate_builtin(40, 8, 0), "train")


def _ids(table: pa.Table) -> list[str]:
    return table.column("id").to_pylist()


def _shuffled(table: pa.Table, seed: int) -> pa.Table:
    permutation = np.random.default_rng(seed).permutation(table.num_rows)
    return table.take(pa.array(permutation, type=pa.int64()))


def _order_ids(table: pa.Table, seed: int) -> list[str]:
    ids = _ids(table)
    return [ids[row] for row in volume_order(table, seed)]


def test_pool_is_what_the_tests_assume(pool: pa.Table) -> None:
    counts = Counter(pool.column("category").to_pylist())
    assert pool.num_rows == 1440
    assert len(counts) == 9
    assert min(counts.values()) >= 640 // 9 + 1  # no category runs out below volume 640


def test_volume_order_is_a_permutation_of_rows(pool: pa.Table) -> None:
    order = volume_order(pool, seed=0)
    assert sorted(order) == list(range(pool.num_rows))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_volumes_are_nested(pool: pa.Table, seed: int) -> None:
    subsets = [set(_ids(sample_volume(pool, volume, seed))) for volume in VOLUMES]
    for volume, subset in zip(VOLUMES, subsets, strict=True):
        assert len(subset) == volume
    for smaller, larger in zip(subsets, subsets[1:], strict=False):
        assert smaller < larger


@pytest.mark.parametrize("volume", [*VOLUMES, 9, 100, 641])
def test_volumes_are_balanced_across_categories(pool: pa.Table, volume: int) -> None:
    counts = Counter(sample_volume(pool, volume, seed=0).column("category").to_pylist())
    categories = set(pool.column("category").to_pylist())
    if volume >= len(categories):
        assert set(counts) == categories
    assert sum(counts.values()) == volume
    assert max(counts.values()) - min(counts.values()) <= 1


def test_round_robin_serves_categories_in_sorted_order(pool: pa.Table) -> None:
    categories = pool.column("category").to_pylist()
    first_round = [categories[row] for row in volume_order(pool, seed=0)[:9]]
    assert first_round == sorted(set(categories))


def test_exhausted_categories_drop_out_and_the_rest_continue(pool: pa.Table) -> None:
    sizes = Counter(pool.column("category").to_pylist())
    smallest = min(sizes.values())  # 120: sentiment and calendar
    volume = smallest * len(sizes) + 40
    counts = Counter(sample_volume(pool, volume, seed=0).column("category").to_pylist())
    for category, size in sizes.items():
        if size == smallest:
            assert counts[category] == smallest
        else:
            assert counts[category] > smallest
    assert sum(counts.values()) == volume
    full = sample_volume(pool, pool.num_rows, seed=0)
    assert sorted(_ids(full)) == sorted(_ids(pool))


def test_subset_is_returned_in_id_order(pool: pa.Table) -> None:
    ids = _ids(sample_volume(pool, 160, seed=2))
    assert ids == sorted(ids)


@pytest.mark.parametrize("shuffle_seed", [0, 1, 2])
def test_result_does_not_depend_on_row_order(pool: pa.Table, shuffle_seed: int) -> None:
    shuffled = _shuffled(pool, shuffle_seed)
    assert _ids(shuffled) != _ids(pool)
    assert _order_ids(shuffled, seed=5) == _order_ids(pool, seed=5)
    for volume in VOLUMES:
        assert _ids(sample_volume(shuffled, volume, seed=5)) == _ids(sample_volume(pool, volume, seed=5))


def test_same_seed_gives_identical_ids(pool: pa.Table) -> None:
    assert _order_ids(pool, seed=3) == _order_ids(pool, seed=3)
    assert _ids(sample_volume(pool, 160, seed=3)) == _ids(sample_volume(pool, 160, seed=3))


def test_different_seeds_give_different_ids(pool: pa.Table) -> None:
    assert _order_ids(pool, seed=0) != _order_ids(pool, seed=1)
    assert set(_ids(sample_volume(pool, 160, seed=0))) != set(_ids(sample_volume(pool, 160, seed=1)))


def test_volume_larger_than_pool_names_the_numbers(pool: pa.Table) -> None:
    with pytest.raises(ValueError, match=r"curated pool: volume 1441 exceeds the 1440 available"):
        sample_volume(pool, 1441, seed=0, origin="curated pool")


@settings(max_examples=30, deadline=None)
@given(shuffle_seed=st.integers(0, 2**32 - 1), volume=st.integers(1, 1440), seed=st.integers(0, 3))
def test_any_row_order_gives_the_same_subset(pool: pa.Table, shuffle_seed: int, volume: int, seed: int) -> None:
    expected = _ids(sample_volume(pool, volume, seed))
    assert _ids(sample_volume(_shuffled(pool, shuffle_seed), volume, seed)) == expected
    assert len(expected) == volume == len(set(expected))
