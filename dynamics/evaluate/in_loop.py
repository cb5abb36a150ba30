"""Generation metrics inside the training loop: one decoding pass per group, scored and reduced over the ranks.

A group (`evaluate.in_loop[i]`) names its metrics, its cadence and its subset of the test set. Each rank decodes
its shard of the subset (`ShardedGenerator`: the same number of `generate` calls on every rank), scores its own
replies with every metric of the group (the reward model once, when one of them needs it), and the per-task sums
are all-reduced on the model's device, so every rank returns the same metrics:
`test_<metric>/macro` (mean over tasks), `/micro` (mean over items), `/task/<t>` and `/category/<c>`, plus what
the decoding did (`test_generation/hit_budget_share`, `/reply_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.distributed as dist

from dynamics.evaluate.aggregate import per_task_means
from dynamics.evaluate.generation import Decoding, ShardedGenerator, Stops
from dynamics.evaluate.metrics import METRICS, ScoredReply, needs_of
from dynamics.evaluate.subsets import stratified_subset
from dynamics.text.prompts import encode_prompt, last_reply_index, last_user_text
from dynamics.text.templates import Template


@dataclass(frozen=True)
class EvalItem:
    """One test item as the generation metrics see it."""

    item_id: str
    task: str
    category: str
    prompt_ids: list[int]  # the conversation before its last reply, under the template
    prompt: str  # the raw user text of that reply (the reward model's input)
    references: list[str]  # the replies a generated one is compared with


class RewardScoring(Protocol):
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]: ...


def eval_items(
    rows: Sequence[dict], tokenizer, template: Template, max_prompt_tokens: int, truncation
) -> list[EvalItem]:
    """EvalItems of test rows (id, task, category, messages, references): references default to the last reply."""
    items = []
    for row in rows:
        messages = row["messages"]
        references = list(row.get("references") or []) or [messages[last_reply_index(messages)]["content"]]
        prompt_ids = encode_prompt(messages, tokenizer, template, max_prompt_tokens, truncation)
        items.append(
            EvalItem(row["id"], row["task"], row["category"], prompt_ids, last_user_text(messages), references)
        )
    return items


class GenerationEvaluator:
    """One in-loop group: its subset's replies decoded on this rank, scored by its metrics, reduced over ranks."""

    def __init__(
        self,
        items: Sequence[EvalItem],
        metrics: Sequence[str],
        subset: int | None,
        seed: int,
        batch_size: int,
        rank: int,
        world_size: int,
        prefix: str = "test",
        stats_key: str | None = None,
    ):
        if not items:
            raise ValueError(f"the {prefix} set is empty: nothing to generate replies for")
        self.prefix = prefix
        self.stats_key = stats_key or f"{prefix}_generation"  # where hit_budget_share and reply_tokens go
        chosen = stratified_subset([item.item_id for item in items], [item.task for item in items], subset, seed)
        self.items = [items[position] for position in chosen]
        self.metrics = list(metrics)
        self._scores = [METRICS.get(name).score for name in self.metrics]  # looked up once, not per item
        self.needs = needs_of(self.metrics)
        self.tasks = sorted({item.task for item in self.items})
        self._category_of = {item.task: item.category for item in self.items}
        self._task_index = {task: index for index, task in enumerate(self.tasks)}
        self._generator = ShardedGenerator([item.prompt_ids for item in self.items], batch_size, rank, world_size)
        self._world_size = world_size

    def evaluate(
        self,
        model,
        tokenizer,
        stops: Stops,
        decoding: Decoding,
        reward: RewardScoring | None = None,
        synced: bool = False,
    ) -> dict[str, float]:
        """Decode, score and reduce; `model` is the causal LM (a DeepSpeed engine's `module`)."""
        replies = self._generator.run(model, tokenizer, stops, decoding, synced=synced)
        mine = [self.items[position] for position in self._generator.positions]
        rewards: list[float | None] = [None] * len(mine)
        if "reward_model" in self.needs:
            if reward is None:
                raise ValueError(f"metrics {self.metrics} need a reward model (evaluate.reward_model)")
            rewards = list(reward.score([item.prompt for item in mine], [reply.text for reply in replies]))
        # (metrics + 2 decoding figures, tasks, [sum, count]) float64, summed over ranks
        sums = torch.zeros((len(self.metrics) + 2, len(self.tasks), 2), dtype=torch.float64)
        for item, reply, item_reward in zip(mine, replies, rewards, strict=True):
            task = self._task_index[item.task]
            scored = ScoredReply(item.references, item.prompt, reply, item_reward)
            for row, score in enumerate(self._scores):
                sums[row, task] += torch.tensor([score(scored), 1.0], dtype=torch.float64)
            sums[-2, task] += torch.tensor([float(reply.hit_budget), 1.0], dtype=torch.float64)
            sums[-1, task] += torch.tensor([float(len(reply.token_ids)), 1.0], dtype=torch.float64)
        if self._world_size > 1:  # on the model's device: NCCL reduces no CPU tensor
            on_device = sums.to(next(model.parameters()).device)
            dist.all_reduce(on_device, op=dist.ReduceOp.SUM)
            sums = on_device.cpu()
        return self._summarise(sums)

    def _summarise(self, sums: torch.Tensor) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for row, name in enumerate(self.metrics):
            metrics |= per_task_means(f"{self.prefix}_{name}", sums[row], self.tasks, self._category_of)
        totals = sums[-2:].sum(dim=1)  # (2, [sum, count]) over every item
        metrics[f"{self.stats_key}/hit_budget_share"] = float(totals[0, 0] / totals[0, 1])
        metrics[f"{self.stats_key}/reply_tokens"] = float(totals[1, 0] / totals[1, 1])
        return metrics
