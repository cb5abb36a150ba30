"""Test loss per task, evaluated inside the training loop on every rank's shard (SPEC §4).

Per example: mean NLL over its reply tokens (+ end token). Per task: mean over its examples. Reported: every
task, every category, the macro average (mean over tasks) and the micro average (mean over examples).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dynamics.text.batching import collate, kept_token_nll, predicting_columns
from dynamics.text.encoding import EncodedExample


@dataclass(frozen=True)
class TestItem:
    """One encoded test example and the task/category it is scored under."""

    example: EncodedExample
    task: str
    category: str


PADDING_SLACK = 1.15  # a batch closes before its padded tokens would exceed its real tokens by more than this


def padding_bounded_batches(lengths: Sequence[int], batch_size: int) -> list[tuple[int, int]]:
    """[begin, end) batches of ascending `lengths`: at most `batch_size` each, and closed early where the next
    (longer) item would pad the batch past PADDING_SLACK × its real tokens. Padding is pure waste in a forward
    pass; a few more, smaller batches cost less than it once lengths spread (measured: 25% padding at 32 per batch
    on the built-in test set)."""
    batches: list[tuple[int, int]] = []
    begin, real = 0, 0
    for index, length in enumerate(lengths):
        count = index - begin
        if count and (count == batch_size or (count + 1) * length > PADDING_SLACK * (real + length)):
            batches.append((begin, index))
            begin, real = index, 0
        real += length
    if begin < len(lengths):
        batches.append((begin, len(lengths)))
    return batches


class TestLossEvaluator:
    """Evaluates a fixed test set; every rank runs the same number of forward passes (ZeRO-3 safe)."""

    def __init__(self, items: Sequence[TestItem], batch_size: int, rank: int, world_size: int, pad_id: int):
        if not items:
            raise ValueError("the test set is empty: nothing to evaluate zero-shot loss on")
        self.tasks = sorted({item.task for item in items})
        self.category_of = {item.task: item.category for item in items}
        self._task_index = {task: index for index, task in enumerate(self.tasks)}
        # Sorted by length, so each batch pads to nearly its own length (results do not depend on order).
        by_length = sorted(items, key=lambda item: len(item.example.input_ids))
        shards = [by_length[other::world_size] for other in range(world_size)]
        self._items = shards[rank]
        self._batches = padding_bounded_batches([len(item.example.input_ids) for item in self._items], batch_size)
        # Every rank runs as many forward passes as the rank with the most batches (ZeRO-3 gathers pair up).
        self._num_batches = max(
            len(padding_bounded_batches([len(item.example.input_ids) for item in shard], batch_size))
            for shard in shards
        )
        self._placeholder = items[0].example
        self._pad_id = pad_id
        self._world_size = world_size

    @torch.inference_mode()
    def evaluate(self, forward: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """Metrics named `test_loss/macro`, `test_loss/micro`, `test_loss/task/<t>`, `test_loss/category/<c>`.

        `forward(batch, columns)` takes a host batch and the (K,) columns whose logits the loss needs, and returns
        those logits, (batch, K, vocab), on the model's device (a causal LM's `logits_to_keep`).
        """
        sums = torch.zeros((len(self.tasks), 2), dtype=torch.float64)  # (tasks, [sum of example means, count])
        device = torch.device("cpu")
        for batch_index in range(self._num_batches):
            begin, end = self._batches[batch_index] if batch_index < len(self._batches) else (0, 0)
            chunk = self._items[begin:end]
            # A rank with fewer items still runs a forward pass (on a placeholder it ignores).
            examples = [item.example for item in chunk] or [self._placeholder]
            batch = collate(examples, self._pad_id)
            columns = predicting_columns(batch["labels"])
            logits = forward(batch, columns)
            device = logits.device
            nll_sum, count = kept_token_nll(logits, batch["labels"].to(device), columns.to(device))
            for item, example_nll, example_count in zip(chunk, nll_sum.tolist(), count.tolist(), strict=False):
                row = self._task_index[item.task]
                sums[row, 0] += example_nll / example_count
                sums[row, 1] += 1
        if self._world_size > 1:  # on the model's device: NCCL reduces no CPU tensor
            on_device = sums.to(device)
            dist.all_reduce(on_device, op=dist.ReduceOp.SUM)
            sums = on_device.cpu()
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
