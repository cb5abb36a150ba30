"""Tests for ordered sharding (dynamics.train.sharding): step s consumes exactly items [s·B, (s+1)·B).

Run: `python -m pytest -q tests/train/test_sharding.py`
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.train.sharding import StepPlan, rebuild_global_order

# (num_items, global batch, micro batch, world size)
GEOMETRIES = [
    (16, 16, 8, 2),
    (100, 16, 8, 2),
    (100, 16, 2, 2),
    (64, 8, 1, 8),
    (37, 12, 2, 3),
    (50, 6, 6, 1),
    (33, 4, 1, 1),
]


def _plans(num_items: int, batch: int, micro: int, world: int, epochs: int = 1) -> list[StepPlan]:
    return [StepPlan(num_items, batch, micro, world, rank, epochs) for rank in range(world)]


def _per_rank_steps(plans: list[StepPlan]) -> list[list[list[int]]]:
    return [
        [[position for micro in plan.micro_batches(step) for position in micro] for step in range(plan.total_steps)]
        for plan in plans
    ]


@pytest.mark.parametrize(("num_items", "batch", "micro", "world"), GEOMETRIES)
def test_each_step_consumes_exactly_its_global_batch(num_items: int, batch: int, micro: int, world: int) -> None:
    plans = _plans(num_items, batch, micro, world)
    assert plans[0].steps_per_epoch == num_items // batch
    for step in range(plans[0].total_steps):
        consumed = [p for plan in plans for micro_batch in plan.micro_batches(step) for p in micro_batch]
        assert sorted(consumed) == list(range(step * batch, (step + 1) * batch))
        assert len(consumed) == len(set(consumed))


@pytest.mark.parametrize(("num_items", "batch", "micro", "world"), GEOMETRIES)
def test_rebuilt_order_is_the_arrangement_minus_the_tail(num_items: int, batch: int, micro: int, world: int) -> None:
    plans = _plans(num_items, batch, micro, world)
    steps = num_items // batch
    assert rebuild_global_order(_per_rank_steps(plans), world) == list(range(steps * batch))
    assert plans[0].dropped_per_epoch == num_items - steps * batch


def test_concrete_two_rank_layout() -> None:
    rank0, rank1 = _plans(40, 16, 4, 2)
    assert rank0.micro_batches(0) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert rank1.micro_batches(0) == [[8, 9, 10, 11], [12, 13, 14, 15]]
    assert rank0.micro_batches(1) == [[16, 17, 18, 19], [20, 21, 22, 23]]
    assert rank1.micro_batches(1) == [[24, 25, 26, 27], [28, 29, 30, 31]]
    assert rank0.total_steps == 2
    assert rank0.dropped_per_epoch == 8


def test_micro_batches_are_contiguous_and_in_order() -> None:
    plan = StepPlan(num_items=96, global_batch_size=24, micro_batch_size=4, world_size=2, rank=1)
    micro_batches = plan.micro_batches(2)
    flat = [p for micro in micro_batches for p in micro]
    assert flat == list(range(2 * 24 + 12, 3 * 24))
    assert all(len(micro) == 4 for micro in micro_batches)


@pytest.mark.parametrize(
    ("batch", "micro", "world", "accumulation"),
    [(16, 8, 2, 1), (16, 2, 2, 4), (64, 4, 4, 4), (12, 1, 3, 4), (8, 8, 1, 1)],
)
def test_accumulation_steps(batch: int, micro: int, world: int, accumulation: int) -> None:
    plan = StepPlan(num_items=100, global_batch_size=batch, micro_batch_size=micro, world_size=world, rank=0)
    assert plan.per_rank == batch // world
    assert plan.accumulation_steps == accumulation
    assert len(plan.micro_batches(0)) == accumulation


@pytest.mark.parametrize("epochs", [2, 3])
def test_epochs_repeat_the_order(epochs: int) -> None:
    plans = _plans(37, 12, 2, 3, epochs=epochs)
    assert plans[0].total_steps == 3 * epochs
    order = rebuild_global_order(_per_rank_steps(plans), 3)
    assert order == list(range(36)) * epochs
    for plan in plans:
        assert plan.micro_batches(4) == plan.micro_batches(1)


@pytest.mark.parametrize(
    ("batch", "micro", "world", "rank"),
    [
        (16, 8, 3, 0),  # 16 items do not split over 3 ranks
        (16, 3, 2, 0),  # 8 per rank do not split into micro-batches of 3
        (8, 8, 2, 0),  # 4 per rank, micro-batch larger than a rank's share
        (16, 8, 2, 2),  # rank outside the world
        (16, 8, 2, -1),
    ],
)
def test_invalid_geometry_raises(batch: int, micro: int, world: int, rank: int) -> None:
    with pytest.raises(ValueError):
        StepPlan(num_items=100, global_batch_size=batch, micro_batch_size=micro, world_size=world, rank=rank)


def test_invalid_geometry_message_names_the_numbers() -> None:
    with pytest.raises(ValueError, match="global batch 16 does not split into 3 ranks × micro-batches of 8"):
        StepPlan(num_items=100, global_batch_size=16, micro_batch_size=8, world_size=3, rank=0)


@pytest.mark.parametrize("step", [-1, 6, 100])
def test_step_out_of_range_raises(step: int) -> None:
    plan = StepPlan(num_items=100, global_batch_size=16, micro_batch_size=8, world_size=2, rank=0)
    assert plan.total_steps == 6
    with pytest.raises(IndexError, match=rf"step {step} outside \[0, 6\)"):
        plan.micro_batches(step)


def test_fewer_items_than_one_batch_gives_no_steps() -> None:
    plan = StepPlan(num_items=10, global_batch_size=16, micro_batch_size=8, world_size=2, rank=0)
    assert plan.total_steps == 0 and plan.dropped_per_epoch == 10
    with pytest.raises(IndexError):
        plan.micro_batches(0)


def test_rebuild_rejects_mismatched_reports() -> None:
    with pytest.raises(ValueError, match="same number of steps"):
        rebuild_global_order([[[0, 1]], [[2, 3]]], world_size=3)
    with pytest.raises(ValueError, match="same number of steps"):
        rebuild_global_order([[[0, 1], [4, 5]], [[2, 3]]], world_size=2)


@st.composite
def geometries(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    world = draw(st.integers(1, 6))
    micro = draw(st.integers(1, 5))
    accumulation = draw(st.integers(1, 4))
    batch = world * micro * accumulation
    num_items = draw(st.integers(0, 6 * batch))
    epochs = draw(st.integers(1, 3))
    return num_items, batch, micro, world, epochs


@settings(max_examples=200, deadline=None)
@given(geometry=geometries())
def test_any_geometry_preserves_the_arrangement(geometry: tuple[int, int, int, int, int]) -> None:
    num_items, batch, micro, world, epochs = geometry
    plans = _plans(num_items, batch, micro, world, epochs)
    steps = num_items // batch
    assert plans[0].accumulation_steps * micro * world == batch
    assert plans[0].dropped_per_epoch == num_items % batch
    per_rank_steps = _per_rank_steps(plans)
    assert rebuild_global_order(per_rank_steps, world) == list(range(steps * batch)) * epochs
    for step in range(plans[0].total_steps):
        consumed = sorted(p for rank_steps in per_rank_steps for p in rank_steps[step])
        first = (step % steps) * batch
        assert consumed == list(range(first, first + batch))
