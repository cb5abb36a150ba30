"""Everything a trial evaluates while it trains: test loss at its cadence, each generation group at its own.

The training loop asks `due(step)` and calls `evaluate(step, …)` with the model in eval mode; the runner decides
which evaluators run at that step (all of them at step 0 and at the last step, so every curve has both ends) and
times each kind, so the share of a trial spent evaluating is a logged figure (`eval_s/loss`, `eval_s/generation`)
rather than a guess.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from dynamics.config import EvaluateConfig
from dynamics.evaluate.ability_scoring import AbilityEvaluator
from dynamics.evaluate.generation import Decoding, Stops
from dynamics.evaluate.in_loop import GenerationEvaluator, RewardScoring, eval_items
from dynamics.evaluate.loss import TestLossEvaluator
from dynamics.evaluate.metrics import METRICS
from dynamics.text.encoding import Truncation
from dynamics.text.templates import Template


def decoding_of(config: EvaluateConfig, seed: int) -> Decoding:
    """The decoding settings of a trial's generation metrics (the trial's seed seeds sampling)."""
    return Decoding(config.max_new_tokens, config.do_sample, config.temperature, config.top_p, seed)


@dataclass
class GenerationGroup:
    """One `evaluate.in_loop` entry: its text metrics (one decoding pass) and its ability scores, if listed."""

    every: int
    evaluator: GenerationEvaluator | None
    abilities: AbilityEvaluator | None = None


class InLoopEvaluation:
    """Test loss every `loss_every` steps (none when `loss` is None) and each generation group every `group.every`
    steps."""

    def __init__(
        self,
        loss: TestLossEvaluator | None,
        loss_every: int,
        groups: Sequence[GenerationGroup],
        tokenizer,
        stops: Stops,
        decoding: Decoding,
        reward: RewardScoring | None,
        synced: bool,
    ):
        self.loss, self.loss_every, self.groups = loss, loss_every, list(groups)
        self._tokenizer, self._stops, self._decoding = tokenizer, stops, decoding
        self._reward, self._synced = reward, synced

    @classmethod
    def build(
        cls,
        loss: TestLossEvaluator | None,
        loss_every: int,
        test_rows: Sequence[dict],
        config: EvaluateConfig | None,
        tokenizer,
        template: Template,
        max_prompt_tokens: int,
        truncation: Truncation,
        seed: int,
        rank: int,
        world_size: int,
        loss_batch_size: int,
        reward: RewardScoring | None = None,
        synced: bool = False,
        prefix: str = "test",
    ) -> InLoopEvaluation:
        """The runner of one evaluation set (the test split unless `prefix` names another): `test_rows` (id, task,
        category, messages, references) feed its generation groups, whose metrics start with `prefix`."""
        config = config or EvaluateConfig()
        groups = []
        if config.in_loop:
            items = eval_items(test_rows, tokenizer, template, max_prompt_tokens, truncation)
            text_groups = sum(
                any(METRICS.get(name).aggregation == "tasks" for name in group.metrics) for group in config.in_loop
            )
            for index, group in enumerate(config.in_loop):
                text_metrics = [name for name in group.metrics if METRICS.get(name).aggregation == "tasks"]
                evaluator = None
                if text_metrics:
                    # Each group's decoding figures under its own key once there are several (they differ by subset).
                    stats_key = f"{prefix}_generation" + (f"/group{index}" if text_groups > 1 else "")
                    evaluator = GenerationEvaluator(
                        items, text_metrics, group.subset, seed, config.batch_size, rank, world_size, prefix, stats_key
                    )
                abilities = None
                if "ability" in group.metrics:
                    abilities = AbilityEvaluator(
                        test_rows,
                        tokenizer,
                        template,
                        max_prompt_tokens,
                        truncation,
                        group.subset,
                        seed,
                        config.batch_size,
                        loss_batch_size,
                        rank,
                        world_size,
                        prefix,
                    )
                groups.append(GenerationGroup(group.every, evaluator, abilities))
        stops = Stops.of(template, tokenizer)
        return cls(loss, loss_every, groups, tokenizer, stops, decoding_of(config, seed), reward, synced)

    def _loss_due(self, step: int, total_steps: int) -> bool:
        return self.loss is not None and (step % self.loss_every == 0 or step == total_steps)

    def _due_groups(self, step: int, total_steps: int) -> list[GenerationGroup]:
        return [group for group in self.groups if step % group.every == 0 or step == total_steps]

    def due(self, step: int, total_steps: int) -> bool:
        """Whether anything is evaluated at `step` (optimizer steps done)."""
        return self._loss_due(step, total_steps) or bool(self._due_groups(step, total_steps))

    def evaluate(
        self,
        step: int,
        total_steps: int,
        forward: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor],
        model,
    ) -> dict[str, float]:
        """The metrics due at `step` (the same on every rank) and the seconds each kind took on this rank."""
        metrics: dict[str, float] = {}
        if self._loss_due(step, total_steps):
            assert self.loss is not None  # _loss_due says so
            started = time.perf_counter()
            metrics |= self.loss.evaluate(forward)
            metrics["eval_s/loss"] = time.perf_counter() - started
        due = self._due_groups(step, total_steps)
        if due:
            started = time.perf_counter()
            for group in due:
                if group.evaluator is not None:
                    metrics |= group.evaluator.evaluate(
                        model, self._tokenizer, self._stops, self._decoding, self._reward, self._synced
                    )
                if group.abilities is not None:
                    metrics |= group.abilities.evaluate(
                        model, forward, self._tokenizer, self._stops, self._decoding, self._synced
                    )
            metrics["eval_s/generation"] = time.perf_counter() - started
        return metrics


class EvaluationSuite:
    """The test split's evaluation and each named set's (`evaluate.sets`), run as one: due when any of them is,
    their metrics merged (their keys never collide: each starts with its set's name), and their seconds summed
    per kind, so `eval_s/loss` and `eval_s/generation` stay the whole cost of evaluating."""

    def __init__(self, evaluations: Sequence[InLoopEvaluation]):
        self.evaluations = list(evaluations)

    def due(self, step: int, total_steps: int) -> bool:
        return any(evaluation.due(step, total_steps) for evaluation in self.evaluations)

    def evaluate(
        self,
        step: int,
        total_steps: int,
        forward: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor],
        model,
    ) -> dict[str, float]:
        merged: dict[str, float] = {}
        for evaluation in self.evaluations:
            if not evaluation.due(step, total_steps):
                continue
            for key, value in evaluation.evaluate(step, total_steps, forward, model).items():
                merged[key] = merged.get(key, 0.0) + value if key.startswith("eval_s/") else value
        return merged
