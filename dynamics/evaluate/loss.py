"""Test loss per task, evaluated inside the training loop on every rank's shard (SPEC §4).

Per example: mean NLL over its reply tokens (+ end token). Per task: mean over its examples. Reported: every
task, every category, the macro average (mean over tasks) and the micro average (mean over examples).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import torch
import torch.distributed as dist

from dynamics.evaluate.aggregate import per_task_means
from dynamics.text.batching import collate, kept_token_nll, predicting_columns
from dynamics.text.census import EncodedSplit
from dynamics.text.encoding import EncodedExample


@dataclass(frozen=True)
class TestItem:
    """One encoded test example and the task/category it is scored under."""

    example: EncodedExample
    task: str
    category: str
    ability: str | None = None  # DoIT's ability label, when the source has one


def test_items(test: pa.Table, split: EncodedSplit) -> list[TestItem]:
    """The scored items of an encoded test table (columns task, category, optionally ability): its dropped rows
    left out."""
    tasks, categories = test.column("task").to_pylist(), test.column("category").to_pylist()
    abilities = test.column("ability").to_pylist() if "ability" in test.column_names else [None] * test.num_rows
    return [
        TestItem(example, tasks[row], categories[row], abilities[row])
        for example, row in zip(split.examples, split.kept_positions, strict=True)
    ]


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


@dataclass(frozen=True)
class RankShard:
    """One rank's share of a fixed list of sequences, sorted by length (so each batch pads to nearly its own
    length) and dealt round-robin, in as many calls as the busiest rank makes: under ZeRO-3 every forward pass
    gathers parameters from all ranks, so the ranks' passes must pair up."""

    positions: list[int]  # indices into the list, of this rank's sequences, in the order they are batched
    batches: list[tuple[int, int]]  # [begin, end) into `positions`
    num_calls: int  # calls every rank makes; those past `batches` run on a placeholder

    @classmethod
    def of(cls, lengths: Sequence[int], batch_size: int, rank: int, world_size: int) -> RankShard:
        by_length = sorted(range(len(lengths)), key=lambda index: lengths[index])
        shards = [by_length[other::world_size] for other in range(world_size)]
        counts = [len(padding_bounded_batches([lengths[i] for i in shard], batch_size)) for shard in shards]
        mine = shards[rank]
        return cls(mine, padding_bounded_batches([lengths[i] for i in mine], batch_size), max(counts))

    def calls(self) -> list[list[int]]:
        """The positions each call handles; an empty list is a placeholder call."""
        chunks = [self.positions[begin:end] for begin, end in self.batches]
        return chunks + [[] for _ in range(self.num_calls - len(chunks))]


class ExampleNll:
    """Mean NLL of each of a fixed list of examples, over their target tokens: this rank scores its shard, in as
    many forward passes as the busiest rank makes (ZeRO-3 gathers pair up), and every rank gets every example's."""

    def __init__(self, examples: Sequence[EncodedExample], batch_size: int, rank: int, world_size: int, pad_id: int):
        if not examples:
            raise ValueError("no examples to score")
        self._examples = list(examples)
        self._shard = RankShard.of([len(e.input_ids) for e in examples], batch_size, rank, world_size)
        self._count = len(examples)
        self._placeholder = examples[0]
        self._pad_id = pad_id
        self._world_size = world_size

    @torch.inference_mode()
    def mean_nll(self, forward: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """(examples,) float64 on the CPU, in the order given; `forward` as for `TestLossEvaluator.evaluate`."""
        means = torch.zeros(self._count, dtype=torch.float64)
        device = torch.device("cpu")
        for positions in self._shard.calls():
            # A rank with fewer examples still runs a forward pass (on a placeholder it ignores).
            chunk = [self._examples[p] for p in positions] or [self._placeholder]
            batch = collate(chunk, self._pad_id)
            columns = predicting_columns(batch["labels"])
            logits = forward(batch, columns)
            device = logits.device
            nll_sum, count = kept_token_nll(logits, batch["labels"].to(device), columns.to(device))
            for position, example_nll, example_count in zip(positions, nll_sum.tolist(), count.tolist(), strict=False):
                means[position] = example_nll / example_count
        if self._world_size > 1:  # on the model's device: NCCL reduces no CPU tensor; each example has one owner
            on_device = means.to(device)
            dist.all_reduce(on_device, op=dist.ReduceOp.SUM)
            means = on_device.cpu()
        return means


class TestLossEvaluator:
    """Evaluates a fixed test set; every rank runs the same number of forward passes (ZeRO-3 safe)."""

    def __init__(
        self,
        items: Sequence[TestItem],
        batch_size: int,
        rank: int,
        world_size: int,
        pad_id: int,
        prefix: str = "test",
    ):
        if not items:
            raise ValueError(f"the {prefix} set is empty: nothing to evaluate loss on")
        self.prefix = prefix
        self.tasks = sorted({item.task for item in items})
        # Per ability too, where items carry one (Study A: each ability's loss curve beside its score).
        self.abilities = sorted({item.ability for item in items if item.ability})
        ability_index = {ability: index for index, ability in enumerate(self.abilities)}
        self._ability_rows = torch.tensor([ability_index.get(item.ability or "", -1) for item in items])
        self.category_of = {item.task: item.category for item in items}
        task_index = {task: index for index, task in enumerate(self.tasks)}
        self._rows = torch.tensor([task_index[item.task] for item in items])  # (items,) task row of each
        self._nll = ExampleNll([item.example for item in items], batch_size, rank, world_size, pad_id)

    def evaluate(self, forward: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """Metrics named `test_loss/macro`, `test_loss/micro`, `test_loss/task/<t>`, `test_loss/category/<c>`.

        `forward(batch, columns)` takes a host batch and the (K,) columns whose logits the loss needs, and returns
        those logits, (batch, K, vocab), on the model's device (a causal LM's `logits_to_keep`).
        """
        means = self._nll.mean_nll(forward)
        sums = torch.zeros((len(self.tasks), 2), dtype=torch.float64)  # (tasks, [sum of example means, count])
        sums[:, 0].index_add_(0, self._rows, means)
        sums[:, 1].index_add_(0, self._rows, torch.ones_like(means))
        metrics = self._summarise(sums)
        if self.abilities:
            labelled = self._ability_rows >= 0
            rows, kept = self._ability_rows[labelled], means[labelled]
            by_ability = torch.zeros((len(self.abilities), 2), dtype=torch.float64)
            by_ability[:, 0].index_add_(0, rows, kept)
            by_ability[:, 1].index_add_(0, rows, torch.ones_like(kept))
            for ability, (total, count) in zip(self.abilities, by_ability.tolist(), strict=True):
                metrics[f"{self.prefix}_loss/ability/{ability}"] = total / count  # mean over its items
        return metrics

    def _summarise(self, sums: torch.Tensor) -> dict[str, float]:
        return per_task_means(f"{self.prefix}_loss", sums, self.tasks, self.category_of)
