"""Tests for ordered sharding (dynamics.train.sharding): every item trains, in the planned order.

Run: `python -m pytest -q tests/train/test_sharding.py`
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.config import TrainConfig
from dynamics.train.sharding import StepPlan, rebuild_global_order


def _plans(num_items: int, batch: int, micro: int, world: int, **options) -> list[StepPlan]:
    return [StepPlan(num_items, batch, micro, world, rank, **options) for rank in range(world)]


def _per_rank_steps(plans: list[StepPlan]) -> list[list[list[int]]]:
    return [
        [[p for micro in plan.micro_batches(step) for p in micro.positions] for step in range(plan.total_steps)]
        for plan in plans
    ]


def _layout(plan: StepPlan, step: int) -> list[tuple[int, ...]]:
    return [micro.positions for micro in plan.micro_batches(step)]


def test_concrete_two_rank_layout_with_a_short_last_step() -> None:
    # 37 items, global batch 16 = 2 ranks × 2 micro-batches of 4: steps of 16, 16, and a short one of 5.
    rank0, rank1 = _plans(37, 16, 4, 2)
    assert rank0.total_steps == 3 and rank0.dropped_per_epoch == 0
    assert _layout(rank0, 0) == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert _layout(rank1, 0) == [(8, 9, 10, 11), (12, 13, 14, 15)]
    assert _layout(rank0, 1) == [(16, 17, 18, 19), (20, 21, 22, 23)]
    # The short step: rank 0 takes 3 items (2 + 1), rank 1 takes 2 (1 + 1); all four micro-batches are real.
    assert _layout(rank0, 2) == [(32, 33), (34,)]
    assert _layout(rank1, 2) == [(35,), (36,)]
    assert [m.loss_weight for m in rank0.micro_batches(2) + rank1.micro_batches(2)] == [1.0] * 4


def test_seventy_items_make_four_full_steps_and_a_short_one_of_six() -> None:
    # B 16 = 2 ranks × 2 micro-batches of 4: 4 × 16 = 64 items, then a short step of 6 split 3 + 3, each 2 + 1.
    rank0, rank1 = _plans(70, 16, 4, 2)
    assert (rank0.steps_per_epoch, rank0.total_steps, rank0.dropped_per_epoch) == (5, 5, 0)
    for step in range(4):
        base = 16 * step
        assert _layout(rank0, step) == [tuple(range(base, base + 4)), tuple(range(base + 4, base + 8))]
        assert _layout(rank1, step) == [tuple(range(base + 8, base + 12)), tuple(range(base + 12, base + 16))]
        assert rank0.items_in_step(step) == 16
    assert rank0.items_in_step(4) == 6 and rank0.step_items(4) == list(range(64, 70))
    assert _layout(rank0, 4) == [(64, 65), (66,)]
    assert _layout(rank1, 4) == [(67, 68), (69,)]
    assert [m.loss_weight for m in rank0.micro_batches(4) + rank1.micro_batches(4)] == [1.0] * 4
    assert rank0.planned_order() == list(range(70))


def test_seventy_items_under_drop_make_four_full_steps_and_count_six() -> None:
    rank0, rank1 = _plans(70, 16, 4, 2, last_step="drop", epochs=2)
    assert (rank0.steps_per_epoch, rank0.total_steps, rank0.dropped_per_epoch) == (4, 8, 6)
    assert rank0.planned_order() == list(range(64)) * 2
    assert _layout(rank1, 7) == [(56, 57, 58, 59), (60, 61, 62, 63)]  # epoch 1's last step is a full one
    assert [rank0.epoch_of(step) for step in range(8)] == [0] * 4 + [1] * 4


def test_five_items_over_two_ranks_of_two_micro_batches_of_four() -> None:
    rank0, rank1 = _plans(5, 16, 4, 2)  # 3 + 2 items: (2, 1) and (1, 1), no empty micro-batch
    assert rank0.total_steps == 1 and rank0.items_in_step(0) == 5
    assert _layout(rank0, 0) == [(0, 1), (2,)]
    assert _layout(rank1, 0) == [(3,), (4,)]


def test_a_volume_smaller_than_one_global_batch_trains_in_one_short_step() -> None:
    rank0, rank1 = _plans(5, 16, 2, 2)  # 2 ranks × 4 micro-batches of 2
    assert rank0.total_steps == 1
    assert _layout(rank0, 0) == [(0,), (1,), (2,), ()]
    assert _layout(rank1, 0) == [(3,), (4,), (), ()]
    # 5 non-empty micro-batches of 8: each weighs 8/5, empty ones 0, so the gradient is their plain mean.
    weights = [m.loss_weight for m in rank0.micro_batches(0) + rank1.micro_batches(0)]
    assert weights == pytest.approx([1.6, 1.6, 1.6, 0.0, 1.6, 1.6, 0.0, 0.0])


def test_drop_leaves_the_tail_out_and_counts_it() -> None:
    plan = StepPlan(37, 16, 4, 2, 0, last_step="drop")
    assert plan.total_steps == 2 and plan.dropped_per_epoch == 5
    assert StepPlan(5, 16, 2, 2, 0, last_step="drop").total_steps == 0
    with pytest.raises(IndexError):
        StepPlan(5, 16, 2, 2, 0, last_step="drop").micro_batches(0)
    # One short step per epoch under 'short', however small the volume.
    assert StepPlan(5, 16, 2, 2, 0, epochs=3).total_steps == 3


def test_drop_under_reshuffle_leaves_out_each_epochs_own_tail() -> None:
    plan = StepPlan(37, 16, 4, 2, 0, epochs=3, epoch_order="reshuffle", last_step="drop", seed=3)
    short = StepPlan(37, 16, 4, 2, 0, epochs=3, epoch_order="reshuffle", last_step="short", seed=3)
    dropped, kept = plan.planned_order(), short.planned_order()
    assert dropped[:32] == list(range(32))
    for epoch in range(3):  # the same epoch orders, each cut after its 32nd item
        assert dropped[32 * epoch : 32 * (epoch + 1)] == kept[37 * epoch : 37 * epoch + 32]


def test_repeat_walks_the_arrangement_every_epoch() -> None:
    plans = _plans(37, 12, 2, 3, epochs=3)
    assert plans[0].total_steps == 4 * 3
    assert rebuild_global_order(_per_rank_steps(plans), 3) == list(range(37)) * 3


def test_reshuffle_keeps_epoch_zero_and_reshuffles_later_epochs_by_seed() -> None:
    plan = StepPlan(40, 8, 4, 2, 0, epochs=3, epoch_order="reshuffle", seed=7)
    order = plan.planned_order()
    epochs = [order[0:40], order[40:80], order[80:120]]
    assert epochs[0] == list(range(40))  # the arrangement is the experiment: epoch 0 follows it
    assert sorted(epochs[1]) == sorted(epochs[2]) == list(range(40))
    assert len({tuple(epoch) for epoch in epochs}) == 3  # each later epoch its own order
    assert StepPlan(40, 8, 4, 2, 1, epochs=3, epoch_order="reshuffle", seed=7).planned_order() == order
    assert StepPlan(40, 8, 4, 2, 0, epochs=3, epoch_order="reshuffle", seed=8).planned_order() != order


@pytest.mark.parametrize("seed", [0, 2])
def test_reshuffled_epochs_differ_for_every_volume_from_three(seed: int) -> None:
    # A coincidence has odds ~1/n!, so only the smallest volumes could show one; these fixed seeds show none.
    for n in range(3, 301):
        plan = StepPlan(n, 4, 1, 2, 0, epochs=3, epoch_order="reshuffle", seed=seed)
        order = plan.planned_order()
        epochs = [tuple(order[e * n : (e + 1) * n]) for e in range(3)]
        assert epochs[0] == tuple(range(n)) and len(set(epochs)) == 3, n
        again = StepPlan(n, 4, 1, 2, 1, epochs=3, epoch_order="reshuffle", seed=seed)
        assert again.planned_order() == order, n  # another construction, another rank: the same order
        other_seed = StepPlan(n, 4, 1, 2, 0, epochs=3, epoch_order="reshuffle", seed=seed + 1)
        assert other_seed.planned_order() != order, n


def test_plan_from_a_train_config_takes_its_order_fields() -> None:
    config = TrainConfig(global_batch_size=16, micro_batch_size=4, epochs=2, epoch_order="reshuffle", last_step="drop")
    plan = StepPlan.of(config, num_items=70, world_size=2, rank=1, seed=5)
    assert plan == StepPlan(70, 16, 4, 2, 1, epochs=2, epoch_order="reshuffle", last_step="drop", seed=5)
    assert plan.total_steps == 8 and plan.accumulation_steps == 2


def test_reshuffled_orders_are_fixed_numbers_not_this_processes_state() -> None:
    # Pinned: a change of generator would silently change every reshuffled trial's order.
    plan = StepPlan(10, 10, 5, 2, 0, epochs=2, epoch_order="reshuffle", seed=0)
    assert plan.planned_order()[10:] == [9, 1, 3, 8, 7, 6, 0, 4, 2, 5]


@pytest.mark.parametrize(
    ("batch", "micro", "world", "accumulation"),
    [(16, 8, 2, 1), (16, 2, 2, 4), (64, 4, 4, 4), (12, 1, 3, 4), (8, 8, 1, 1)],
)
def test_accumulation_steps(batch: int, micro: int, world: int, accumulation: int) -> None:
    plan = StepPlan(num_items=100, global_batch_size=batch, micro_batch_size=micro, world_size=world, rank=0)
    assert plan.per_rank == batch // world
    assert plan.accumulation_steps == accumulation
    assert len(plan.micro_batches(0)) == accumulation


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


@pytest.mark.parametrize(("num_items", "epochs"), [(-1, 1), (10, 0)])
def test_invalid_volume_or_epochs_raises(num_items: int, epochs: int) -> None:
    with pytest.raises(ValueError, match="num_items >= 0 and epochs >= 1"):
        StepPlan(num_items, 16, 8, 2, 0, epochs=epochs)


def test_invalid_geometry_message_names_the_numbers() -> None:
    with pytest.raises(ValueError, match="global batch 16 does not split into 3 ranks × micro-batches of 8"):
        StepPlan(num_items=100, global_batch_size=16, micro_batch_size=8, world_size=3, rank=0)


@pytest.mark.parametrize("step", [-1, 7, 100])
def test_step_out_of_range_raises(step: int) -> None:
    plan = StepPlan(num_items=100, global_batch_size=16, micro_batch_size=8, world_size=2, rank=0)
    assert plan.total_steps == 7  # 6 full steps and a short one of 4
    with pytest.raises(IndexError, match=rf"step {step} outside \[0, 7\)"):
        plan.micro_batches(step)


def test_rebuild_rejects_mismatched_reports() -> None:
    with pytest.raises(ValueError, match="same number of steps"):
        rebuild_global_order([[[0, 1]], [[2, 3]]], world_size=3)
    with pytest.raises(ValueError, match="same number of steps"):
        rebuild_global_order([[[0, 1], [4, 5]], [[2, 3]]], world_size=2)


@st.composite
def plans(draw: st.DrawFn) -> list[StepPlan]:
    world = draw(st.sampled_from([1, 2, 4]))
    micro = draw(st.integers(1, 4))
    accumulation = draw(st.sampled_from([1, 2, 4]))
    return _plans(
        draw(st.integers(1, 300)),
        world * micro * accumulation,
        micro,
        world,
        epochs=draw(st.integers(1, 3)),
        epoch_order=draw(st.sampled_from(["repeat", "reshuffle"])),
        last_step=draw(st.sampled_from(["short", "drop"])),
        seed=draw(st.integers(0, 2**31)),
    )


@settings(max_examples=300, deadline=None)
@given(plans())
def test_every_item_trains_as_planned_for_any_geometry(plans: list[StepPlan]) -> None:
    plan = plans[0]
    n, batch, scale = plan.num_items, plan.global_batch_size, plan.accumulation_steps * plan.world_size
    kept = n - n % batch if plan.last_step == "drop" else n
    assert plan.dropped_per_epoch == n - kept
    order = plan.planned_order()
    assert len(order) == kept * plan.epochs
    if plan.last_step == "short":
        assert Counter(order) == dict.fromkeys(range(n), plan.epochs)  # every item, exactly `epochs` times
    for epoch in range(plan.epochs):
        walked = order[epoch * kept : (epoch + 1) * kept]
        if epoch == 0 or plan.epoch_order == "repeat":
            assert walked == list(range(kept))  # the arrangement itself (its kept head under 'drop')
        else:
            assert len(set(walked)) == kept and set(walked) <= set(range(n))
    assert rebuild_global_order(_per_rank_steps(plans), plan.world_size) == order
    walked_so_far = 0
    for step in range(plan.total_steps):
        per_rank = [rank_plan.micro_batches(step) for rank_plan in plans]
        micro_batches = [micro for rank_micro_batches in per_rank for micro in rank_micro_batches]
        assert {len(rank_micro_batches) for rank_micro_batches in per_rank} == {plan.accumulation_steps}
        assert all(len(micro.positions) <= plan.micro_batch_size for micro in micro_batches)
        # Step k of an epoch holds epoch-order positions [k·B, (k+1)·B): full, or the epoch's remainder.
        size = plan.items_in_step(step)
        assert size == batch or (plan.last_step == "short" and size == n % batch)
        assert plan.step_items(step) == order[walked_so_far : walked_so_far + size]
        walked_so_far += size
        # DeepSpeed averages over accumulation × world micro-batches; the weights turn that into the real ones' mean.
        real = [micro for micro in micro_batches if micro.positions]
        assert sum(micro.loss_weight for micro in micro_batches) == pytest.approx(scale)
        assert all(micro.loss_weight == pytest.approx(scale / len(real)) for micro in real)
        assert all(micro.loss_weight == 0.0 for micro in micro_batches if not micro.positions)
        assert [p for micro in micro_batches for p in micro.positions] == plan.step_items(step)
        if size == batch:
            assert all(micro.loss_weight == 1.0 for micro in micro_batches)
        # Balanced: rank slices, and each rank's micro-batches, differ by at most one item, larger ones first.
        rank_sizes = [sum(len(micro.positions) for micro in rank_micro_batches) for rank_micro_batches in per_rank]
        for sizes in [rank_sizes] + [[len(micro.positions) for micro in rank] for rank in per_rank]:
            assert sizes == sorted(sizes, reverse=True) and sizes[0] - sizes[-1] <= 1
    assert walked_so_far == len(order)
