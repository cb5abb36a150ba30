"""Ordered sharding: global optimizer step s consumes exactly items [s·B, (s+1)·B) of the arrangement.

Each rank takes a fixed contiguous slice of every global batch and splits it into micro-batches, so the
global order is the arrangement whatever the number of workers or gradient-accumulation steps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepPlan:
    """How one rank walks the arranged order."""

    num_items: int  # items in the (filtered) arrangement
    global_batch_size: int
    micro_batch_size: int
    world_size: int
    rank: int
    epochs: int = 1

    def __post_init__(self) -> None:
        per_rank, remainder = divmod(self.global_batch_size, self.world_size)
        if remainder or per_rank % self.micro_batch_size:
            raise ValueError(
                f"global batch {self.global_batch_size} does not split into {self.world_size} ranks × "
                f"micro-batches of {self.micro_batch_size}"
            )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world of {self.world_size}")

    @property
    def per_rank(self) -> int:
        return self.global_batch_size // self.world_size

    @property
    def accumulation_steps(self) -> int:
        return self.per_rank // self.micro_batch_size

    @property
    def steps_per_epoch(self) -> int:
        return self.num_items // self.global_batch_size

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def dropped_per_epoch(self) -> int:
        """Tail items that do not fill a last global batch (reported, not silently lost)."""
        return self.num_items - self.steps_per_epoch * self.global_batch_size

    def micro_batches(self, step: int) -> list[list[int]]:
        """Positions in the arrangement that this rank consumes at global step `step`, per micro-batch."""
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} outside [0, {self.total_steps})")
        start = (step % self.steps_per_epoch) * self.global_batch_size + self.rank * self.per_rank
        return [
            list(range(begin, begin + self.micro_batch_size))
            for begin in range(start, start + self.per_rank, self.micro_batch_size)
        ]


def rebuild_global_order(per_rank_steps: list[list[list[int]]], world_size: int) -> list[int]:
    """Inverse of StepPlan: from each rank's consumed positions per step, the global sequence of items.

    `per_rank_steps[rank][step]` is the flat list of positions that rank consumed at that step.
    """
    num_steps = {len(steps) for steps in per_rank_steps}
    if len(per_rank_steps) != world_size or len(num_steps) != 1:
        raise ValueError("every rank must report the same number of steps")
    order: list[int] = []
    for step in range(num_steps.pop()):
        for rank in range(world_size):
            order.extend(per_rank_steps[rank][step])
    return order
