"""What a trial evaluates as it trains, assembled on each rank: the test split and every named set of
`evaluate.sets`, each with its loss and generation metrics under its own prefix, and what encoding left out of
each set (logged, so a thinned set is never silent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dynamics.config import EvalSetConfig, EvaluateConfig, InLoopMetrics
from dynamics.evaluate.loss import TestLossEvaluator, test_items
from dynamics.evaluate.metrics import METRICS
from dynamics.evaluate.runner import EvaluationSuite, InLoopEvaluation
from dynamics.text.census import EncodedSplit, encode_split
from dynamics.text.encoding import Truncation
from dynamics.text.templates import TEMPLATES
from dynamics.train.inputs import WorkerInputs


@dataclass(frozen=True)
class TrialEvaluation:
    """The suite the loop runs, and per named set what its encoding dropped or cut (logged at step 0)."""

    suite: EvaluationSuite
    census: dict[str, float]


def _set_generation(evaluate: EvaluateConfig, entry: EvalSetConfig, every: int) -> EvaluateConfig:
    """The evaluate section one named set runs with: its generation metrics as one group at its cadence."""
    generated = [name for name in entry.metrics if "generation" in METRICS.get(name).needs]
    groups = [InLoopMetrics(metrics=generated, every=every, subset=entry.subset)] if generated else []
    return evaluate.model_copy(update={"in_loop": groups})


def build_trial_evaluation(
    inputs: WorkerInputs, tokenizer, test: EncodedSplit, device: torch.device, rank: int, world_size: int
) -> TrialEvaluation:
    """Test loss on every test item this rank holds (`test`: the test split as this rank encoded it), the
    configured generation groups, and each named set."""
    config = inputs.train
    template, truncation = TEMPLATES.get(config.template), Truncation.of(config)
    from dynamics.models.reward import reward_scorer

    settings = None if inputs.evaluate is None else inputs.evaluate.reward_model
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
    reward = reward_scorer(inputs.reward_model, settings, dtype, device)
    synced = config.zero_stage == 3 and world_size > 1
    common: dict[str, Any] = dict(
        tokenizer=tokenizer,
        template=template,
        max_prompt_tokens=config.max_length,
        truncation=truncation,
        seed=inputs.seed,
        rank=rank,
        world_size=world_size,
        loss_batch_size=config.eval_batch_size,
        reward=reward,
        synced=synced,
    )
    pad_id = tokenizer.pad_token_id
    loss = TestLossEvaluator(test_items(inputs.test, test), config.eval_batch_size, rank, world_size, pad_id)
    generating = inputs.evaluate is not None and inputs.evaluate.in_loop
    evaluations = [
        InLoopEvaluation.build(
            loss, config.eval_every, inputs.test.to_pylist() if generating else [], inputs.evaluate, **common
        )
    ]
    census: dict[str, float] = {}
    evaluate = inputs.evaluate or EvaluateConfig()
    entries = {entry.name: entry for entry in evaluate.sets}
    for name, rows in inputs.eval_sets:
        entry = entries[name]
        every = entry.every or config.eval_every
        encoded = encode_split(rows, tokenizer, template, config)
        census |= _census(name, encoded)
        set_loss = None
        if "loss" in entry.metrics:
            set_loss = TestLossEvaluator(
                test_items(rows, encoded), config.eval_batch_size, rank, world_size, pad_id, prefix=name
            )
        set_config = _set_generation(evaluate, entry, every)
        evaluations.append(
            InLoopEvaluation.build(
                set_loss, every, rows.to_pylist() if set_config.in_loop else [], set_config, prefix=name, **common
            )
        )
    return TrialEvaluation(EvaluationSuite(evaluations), census)


def _census(name: str, encoded: EncodedSplit) -> dict[str, float]:
    return {
        f"dropped_items/{name}": len(encoded.dropped),
        f"truncated_prompt_items/{name}": encoded.prompt_cut,
        f"truncated_reply_items/{name}": encoded.reply_cut,
    }
