"""Ordered sharding: global optimizer step s consumes exactly the items the plan gives it, whatever the workers.

Each epoch walks an epoch order of the arrangement: the arrangement itself in epoch 0, and in later epochs the
arrangement again ('repeat', Study B) or a seeded reshuffle of it ('reshuffle', Study A). Inside an epoch, step
k holds epoch-order positions [k·B, (k+1)·B); a volume B does not divide ends the epoch with a short step
('short') or leaves its tail out, counted ('drop'). Each rank takes a fixed contiguous slice of every global
batch and splits it into exactly `accumulation_steps` micro-batches, so every rank runs the same number of
forward passes (ZeRO-3's collectives pair up) even in a short step, where some micro-batches may be empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from dynamics.config import TrainConfig


@dataclass(frozen=True)
class MicroBatch:
    """Arrangement positions of one forward pass on one rank, and the weight of its token-averaged loss.

    An empty micro-batch (a short step leaves this rank less than a full slice) still runs a forward pass on a
    placeholder; its weight is 0. Weights make the step's gradient the mean over its non-empty micro-batches.
    """

    positions: tuple[int, ...]
    loss_weight: float


def epoch_permutation(num_items: int, epoch: int, order: Literal["repeat", "reshuffle"], seed: int) -> np.ndarray:
    """Positions of the arrangement in the order epoch `epoch` walks them, (num_items,) int64.

    A function of its arguments only (numpy's seeded PCG64, not Python's hash or global `random`), so every rank,
    process and resume computes the same reshuffle.
    """
    if epoch == 0 or order == "repeat":
        return np.arange(num_items)
    return np.random.default_rng([seed, epoch]).permutation(num_items)


def _split(count: int, parts: int) -> list[int]:
    """`count` split into `parts` sizes as equal as possible, larger ones first."""
    base, extra = divmod(count, parts)
    return [base + (index < extra) for index in range(parts)]


@dataclass(frozen=True)
class StepPlan:
    """How one rank walks the arranged order, step by step and epoch by epoch."""

    num_items: int  # items in the (encoded) arrangement
    global_batch_size: int
    micro_batch_size: int
    world_size: int
    rank: int
    epochs: int = 1
    epoch_order: Literal["repeat", "reshuffle"] = "repeat"
    last_step: Literal["short", "drop"] = "short"
    seed: int = 0

    def __post_init__(self) -> None:
        per_rank, remainder = divmod(self.global_batch_size, self.world_size)
        if remainder or per_rank % self.micro_batch_size:
            raise ValueError(
                f"global batch {self.global_batch_size} does not split into {self.world_size} ranks × "
                f"micro-batches of {self.micro_batch_size}"
            )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world of {self.world_size}")
        if self.num_items < 0 or self.epochs < 1:
            raise ValueError(f"a plan needs num_items >= 0 and epochs >= 1, got {self.num_items} and {self.epochs}")

    @classmethod
    def of(cls, config: TrainConfig, num_items: int, world_size: int, rank: int, seed: int) -> StepPlan:
        """The plan a trial's train config gives `rank` of `world_size` over `num_items` items."""
        return cls(
            num_items,
            config.global_batch_size,
            config.micro_batch_size,
            world_size,
            rank,
            config.epochs,
            config.epoch_order,
            config.last_step,
            seed,
        )

    @property
    def per_rank(self) -> int:
        """Items per rank in a full step."""
        return self.global_batch_size // self.world_size

    @property
    def accumulation_steps(self) -> int:
        """Micro-batches per rank in every step, short ones included."""
        return self.per_rank // self.micro_batch_size

    @property
    def full_steps_per_epoch(self) -> int:
        """Steps of a whole global batch in each epoch."""
        return self.num_items // self.global_batch_size

    @property
    def remainder(self) -> int:
        """Items after the last full step of an epoch."""
        return self.num_items % self.global_batch_size

    @property
    def steps_per_epoch(self) -> int:
        """Full steps, plus the short one under 'short' when B does not divide the volume."""
        return self.full_steps_per_epoch + (self.last_step == "short" and self.remainder > 0)

    @property
    def total_steps(self) -> int:
        """Global optimizer steps over all epochs; steps are numbered 0 .. total_steps - 1 across epochs."""
        return self.steps_per_epoch * self.epochs

    @property
    def dropped_per_epoch(self) -> int:
        """Tail items each epoch leaves out under last_step 'drop' (0 under 'short')."""
        return self.remainder if self.last_step == "drop" else 0

    def epoch_of(self, step: int) -> int:
        """The epoch global step `step` belongs to."""
        self._check(step)
        return step // self.steps_per_epoch

    @cached_property
    def _orders(self) -> dict[int, np.ndarray]:
        return {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders[epoch] = epoch_permutation(self.num_items, epoch, self.epoch_order, self.seed)
        return self._orders[epoch]

    def _check(self, step: int) -> None:
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} outside [0, {self.total_steps})")

    def step_items(self, step: int) -> list[int]:
        """Arrangement positions of global step `step`, all ranks together, in global order."""
        self._check(step)
        epoch, within = divmod(step, self.steps_per_epoch)
        begin = within * self.global_batch_size
        end = min(begin + self.global_batch_size, self.num_items)
        return self._order(epoch)[begin:end].tolist()

    def items_in_step(self, step: int) -> int:
        """Items of global step `step` over all ranks: B, or the epoch's remainder in its short last step."""
        self._check(step)
        within = step % self.steps_per_epoch
        return min(self.global_batch_size, self.num_items - within * self.global_batch_size)

    def _rank_sizes(self, size: int) -> list[int]:
        """Items each rank takes of a step of `size` items: the full slice, or a balanced share of a short step.

        A short step of r items gives the ranks r // W each and one more to the first r % W ranks, so slices differ
        by at most one item (rank 0 largest) and a rank is empty only when r < W.
        """
        return [self.per_rank] * self.world_size if size == self.global_batch_size else _split(size, self.world_size)

    def _micro_sizes(self, size: int) -> list[list[int]]:
        """Per rank, the sizes of its `accumulation_steps` micro-batches for a step of `size` items.

        A rank's slice is split the same balanced way (sizes differ by at most one, earlier ones larger), so a
        short step's memory peak is as low as it can be; none exceeds micro_batch_size since no slice exceeds
        per_rank = accumulation_steps × micro_batch_size.
        """
        return [_split(rank_size, self.accumulation_steps) for rank_size in self._rank_sizes(size)]

    def micro_batches(self, step: int) -> list[MicroBatch]:
        """This rank's micro-batches at global step `step`: always `accumulation_steps` of them.

        A non-empty one weighs accumulation_steps · world_size / M, with M the step's non-empty micro-batches over
        all ranks (1.0 in a full step), an empty one 0.0: DeepSpeed divides each loss by accumulation_steps and
        averages over ranks, so the gradient is the plain mean of the real micro-batches' token-averaged losses.
        """
        items = self.step_items(step)
        sizes = self._micro_sizes(len(items))
        scale = self.accumulation_steps * self.world_size
        non_empty = sum(size > 0 for rank_sizes in sizes for size in rank_sizes)
        start = sum(sum(rank_sizes) for rank_sizes in sizes[: self.rank])
        batches = []
        for size in sizes[self.rank]:
            positions = tuple(items[start : start + size])
            batches.append(MicroBatch(positions, scale / non_empty if size else 0.0))
            start += size
        return batches

    def planned_order(self) -> list[int]:
        """Every arrangement position the plan trains on, in training order, over all steps and epochs."""
        return [position for step in range(self.total_steps) for position in self.step_items(step)]


def rebuild_global_order(per_rank_steps: list[list[list[int]]], world_size: int) -> list[int]:
    """Inverse of StepPlan: from each rank's consumed positions per step, the global sequence of items.

    `per_rank_steps[rank][step]` is the flat list of positions that rank consumed at that step (possibly empty
    in a short step).
    """
    num_steps = {len(steps) for steps in per_rank_steps}
    if len(per_rank_steps) != world_size or len(num_steps) != 1:
        raise ValueError(
            f"expected {world_size} ranks' reports with the same number of steps, got "
            f"{len(per_rank_steps)} reports of {sorted(num_steps)} steps"
        )
    order: list[int] = []
    for step in range(num_steps.pop()):
        for rank in range(world_size):
            order.extend(per_rank_steps[rank][step])
    return order
