"""Test loss per task, evaluated inside the training loop on every rank's shard (SPEC §4).

Per example: mean NLL over its reply tokens (+ end token). Per task: mean over its examples. Reported: every
task, every category, the macro average (mean over tasks) and the micro average (mean over examples).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dynamics.text.batching import collate, token_nll
from dynamics.text.encoding import EncodedExample


@dataclass(frozen=True)
class TestItem:
    """One encoded test example and the task/category it is scored under."""

    example: EncodedExample
    task: str
    category: str


class TestLossEvaluator:
    """Evaluates a fixed test set; every rank runs the same number of forward passes (ZeRO-3 safe)."""

    def __init__(self, items: Sequence[TestItem], batch_size: int, rank: int, world_size: int, pad_id: int):
        if not items:
            raise ValueError("the test set is empty: nothing to evaluate zero-shot loss on")
        self.tasks = sorted({item.task for item in items})
        self.category_of = {item.task: item.category for item in items}
        self._task_index = {task: index for index, task in enumerate(self.tasks)}
        self._items = list(items)[rank::world_size]
        self._placeholder = items[0].example
        per_rank = -(-len(items) // world_size)
        self._num_batches = -(-per_rank // batch_size)
        self._batch_size = batch_size
        self._pad_id = pad_id
        self._world_size = world_size

    @torch.no_grad()
    def evaluate(self, forward: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> dict[str, float]:
        """Metrics named `test_loss/macro`, `test_loss/micro`, `test_loss/task/<t>`, `test_loss/category/<c>`."""
        sums = torch.zeros((len(self.tasks), 2), dtype=torch.float64)  # (tasks, [sum of example means, count])
        for batch_index in range(self._num_batches):
            chunk = self._items[batch_index * self._batch_size : (batch_index + 1) * self._batch_size]
            # A rank with fewer items still runs a forward pass (on a placeholder it ignores).
            examples = [item.example for item in chunk] or [self._placeholder]
            batch = collate(examples, self._pad_id)
            nll_sum, count = token_nll(forward(batch), batch["labels"])
            for item, example_nll, example_count in zip(chunk, nll_sum.tolist(), count.tolist(), strict=False):
                row = self._task_index[item.task]
                sums[row, 0] += example_nll / example_count
                sums[row, 1] += 1
        if self._world_size > 1:
            dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        return self._summarise(sums)

    def _summarise(self, sums: torch.Tensor) -> dict[str, float]:
        task_means = (sums[:, 0] / sums[:, 1]).tolist()
        metrics = {f"test_loss/task/{task}": mean for task, mean in zip(self.tasks, task_means, strict=True)}
        by_category: dict[str, list[float]] = {}
        for task, mean in zip(self.tasks, task_means, strict=True):
            by_category.setdefault(self.category_of[task], []).append(mean)
        metrics.update({f"test_loss/category/{c}": sum(v) / len(v) for c, v in sorted(by_category.items())})
        metrics["test_loss/macro"] = sum(task_means) / len(task_means)
        metrics["test_loss/micro"] = float(sums[:, 0].sum() / sums[:, 1].sum())
        return metrics
