"""Tests for the learning-rate schedule and DeepSpeed batch geometry (dynamics.train.deepspeed_setup).

Run: `python -m pytest -q tests/train/test_schedule.py`
"""

from __future__ import annotations

import math

import pytest

from dynamics.config import TrainConfig
from dynamics.train.deepspeed_setup import deepspeed_config, lr_lambda
from dynamics.train.sharding import StepPlan


def _multipliers(total_steps: int, **train: object) -> list[float]:
    schedule = lr_lambda(TrainConfig(**train), total_steps)
    return [schedule(step) for step in range(total_steps + 1)]


@pytest.mark.parametrize("floor", [0.0, 0.1, 0.5])
def test_cosine_starts_at_one_and_ends_at_the_floor(floor: float) -> None:
    values = _multipliers(20, schedule="cosine", min_lr_ratio=floor)
    assert values[0] == pytest.approx(1.0)
    assert values[20] == pytest.approx(floor)
    assert values[10] == pytest.approx(floor + (1 - floor) * 0.5)  # half-way is the mid-point of the cosine
    assert all(later <= earlier for earlier, later in zip(values, values[1:], strict=False))
    assert min(values) == pytest.approx(floor)


def test_cosine_matches_the_formula() -> None:
    values = _multipliers(8, schedule="cosine", min_lr_ratio=0.1)
    for step, value in enumerate(values):
        assert value == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / 8)))


def test_cosine_stays_at_the_floor_after_the_end() -> None:
    schedule = lr_lambda(TrainConfig(schedule="cosine", min_lr_ratio=0.1), total_steps=10)
    assert schedule(15) == pytest.approx(0.1)


def test_linear_decays_to_zero() -> None:
    values = _multipliers(10, schedule="linear")
    assert values == pytest.approx([1 - step / 10 for step in range(11)])
    assert values[-1] == 0.0


def test_constant_stays_at_one() -> None:
    assert _multipliers(6, schedule="constant") == [1.0] * 7


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_warmup_ramps_to_the_peak(schedule: str) -> None:
    values = _multipliers(12, schedule=schedule, warmup_steps=3, min_lr_ratio=0.1)
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(later > earlier for earlier, later in zip(values[:4], values[1:4], strict=False))
    assert max(values) == pytest.approx(1.0)


def test_study_a_warmup_then_linear_to_zero() -> None:
    # SPEC §3 Study A: 2 warm-up steps then linear decay to 0.
    values = _multipliers(10, schedule="linear", warmup_steps=2)
    assert values[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert values[2:] == pytest.approx([1 - k / 8 for k in range(9)])
    assert values[10] == 0.0


def test_warmup_then_cosine_reaches_the_floor_at_total_steps() -> None:
    values = _multipliers(10, schedule="cosine", warmup_steps=2, min_lr_ratio=0.2)
    assert values[2] == pytest.approx(1.0)
    assert values[10] == pytest.approx(0.2)
    assert all(later <= earlier for earlier, later in zip(values[2:], values[3:], strict=False))


@pytest.mark.parametrize(("batch", "micro", "world"), [(16, 8, 2), (16, 2, 2), (64, 4, 4), (12, 1, 3), (8, 8, 1)])
def test_deepspeed_batch_geometry(batch: int, micro: int, world: int) -> None:
    train = TrainConfig(global_batch_size=batch, micro_batch_size=micro)
    plan = StepPlan(num_items=1000, global_batch_size=batch, micro_batch_size=micro, world_size=world, rank=0)
    config = deepspeed_config(train, plan)
    assert config["train_batch_size"] == batch
    assert config["train_micro_batch_size_per_gpu"] == micro
    assert config["gradient_accumulation_steps"] == batch // (micro * world)
    assert (
        config["train_micro_batch_size_per_gpu"] * config["gradient_accumulation_steps"] * world
        == config["train_batch_size"]
    )


def test_deepspeed_config_carries_train_settings() -> None:
    train = TrainConfig(zero_stage=3, grad_clip=0.5, precision="bf16", global_batch_size=16, micro_batch_size=4)
    plan = StepPlan(num_items=64, global_batch_size=16, micro_batch_size=4, world_size=2, rank=1)
    config = deepspeed_config(train, plan)
    assert config["zero_optimization"]["stage"] == 3
    assert config["gradient_clipping"] == 0.5
    assert config["bf16"] == {"enabled": True}
    assert deepspeed_config(TrainConfig(), plan)["bf16"] == {"enabled": False}
