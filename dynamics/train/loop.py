"""The per-worker training loop: DeepSpeed on a Ray Train worker, ordered batches, in-loop test loss.

Runs inside `TorchTrainer` (Ray Train V2). Ray has already created the process group (gloo on CPU, NCCL on
GPU); DeepSpeed reuses it. Rank 0 writes every step's metrics to the trial's MLflow run; every rank calls
`ray.train.report` once, at the end, with the final metrics.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import torch
import torch.distributed as dist

from dynamics.config import TrainConfig
from dynamics.evaluate.loss import TestItem, TestLossEvaluator
from dynamics.models import ModelSource
from dynamics.text.batching import collate, token_nll
from dynamics.text.encoding import EncodedExample, encode
from dynamics.text.templates import TEMPLATES, Template
from dynamics.tracking import TrackedRun
from dynamics.train.deepspeed_setup import deepspeed_config, lr_lambda
from dynamics.train.sharding import StepPlan


@dataclass(frozen=True)
class WorkerInputs:
    """Everything a worker needs, passed whole through `train_loop_config` (no dict round-trips)."""

    model: ModelSource
    train: TrainConfig
    arranged: pa.Table  # the training items in training order: id, messages
    test: pa.Table  # the test set: id, task, category, messages
    run: TrackedRun | None = None  # the trial's MLflow run; rank 0 logs to it
    trial_started_at: float | None = None  # time.time() when the Tune trial began, for start-up figures


def _encode_train(
    arranged: pa.Table, tokenizer, template: Template, max_length: int
) -> tuple[list[int], list[EncodedExample]]:
    """Encode the arranged items; those left without a reply token after truncation are dropped (counted)."""
    kept_positions: list[int] = []
    encoded: list[EncodedExample] = []
    for position, messages in enumerate(arranged.column("messages").to_pylist()):
        example = encode(messages, tokenizer, template, max_length)
        if example is not None:
            kept_positions.append(position)
            encoded.append(example)
    return kept_positions, encoded


def _encode_test(test: pa.Table, tokenizer, template: Template, max_length: int) -> tuple[list[TestItem], int]:
    items: list[TestItem] = []
    dropped = 0
    columns = (test.column(name).to_pylist() for name in ("messages", "task", "category"))
    for messages, task, category in zip(*columns, strict=True):
        example = encode(messages, tokenizer, template, max_length)
        if example is None:
            dropped += 1
        else:
            items.append(TestItem(example, task, category))
    return items, dropped


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Entry point given to `TorchTrainer`; `loop_config["inputs"]` is a WorkerInputs."""
    import deepspeed
    import ray.train

    from dynamics.models import load_model, load_tokenizer, on_this_node

    inputs: WorkerInputs = loop_config["inputs"]
    config = inputs.train
    template = TEMPLATES.get(config.template)
    train_ids = inputs.arranged.column("id").to_pylist()
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config.torch_threads)
    started = time.perf_counter()

    source = on_this_node(inputs.model)  # a built-in model saved on the driver may need rebuilding here
    tokenizer = load_tokenizer(source.tokenizer, template)
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
    model = load_model(source.model, tokenizer, dtype)
    kept_positions, train_examples = _encode_train(inputs.arranged, tokenizer, template, config.max_length)
    test_items, dropped_test = _encode_test(inputs.test, tokenizer, template, config.max_length)
    plan = StepPlan(
        num_items=len(train_examples),
        global_batch_size=config.global_batch_size,
        micro_batch_size=config.micro_batch_size,
        world_size=world_size,
        rank=rank,
        epochs=config.epochs,
    )
    if plan.total_steps == 0:
        raise ValueError(
            f"{len(train_examples)} trainable items cannot fill one global batch of {config.global_batch_size}"
        )

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, plan.total_steps))
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=deepspeed_config(config, plan),
        dist_init_required=False,
    )
    evaluator = TestLossEvaluator(
        test_items, config.eval_batch_size, rank, world_size, pad_id=tokenizer.pad_token_id
    )
    logger = _RankZeroLogger(inputs, rank)
    setup = {"worker_setup_s": time.perf_counter() - started}
    if inputs.trial_started_at is not None:
        setup["startup_s"] = time.time() - inputs.trial_started_at  # trial start → ready for step 0
    logger.log(
        setup
        | {
            "dropped_train_items": len(train_ids) - len(train_examples),
            "dropped_tail_items": plan.dropped_per_epoch,
            "dropped_test_items": dropped_test,
            "total_steps": plan.total_steps,
        },
        step=0,
    )

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    consumed: list[list[int]] = []  # positions in the arrangement (before dropping), per step
    tokens_seen = 0
    step_started = time.perf_counter()
    for step in range(plan.total_steps + 1):
        if step % config.eval_every == 0 or step == plan.total_steps:
            engine.eval()
            metrics = evaluator.evaluate(forward)
            engine.train()
            logger.log(metrics, step)
            logger.flush()
        if step == plan.total_steps:
            break
        step_positions: list[int] = []
        step_sums = torch.zeros(3, dtype=torch.float64)  # [token NLL sum, target tokens, input tokens]
        for micro in plan.micro_batches(step):
            batch = collate([train_examples[p] for p in micro], tokenizer.pad_token_id)
            nll_sum, count = token_nll(forward(batch), batch["labels"])
            loss = nll_sum.sum() / count.sum()  # token-averaged per micro-batch (SPEC §3)
            engine.backward(loss)
            engine.step()
            step_positions.extend(kept_positions[p] for p in micro)
            step_sums += torch.tensor(
                [nll_sum.sum().item(), count.sum().item(), batch["attention_mask"].sum().item()], dtype=torch.float64
            )
        consumed.append(step_positions)
        if world_size > 1:
            dist.all_reduce(step_sums, op=dist.ReduceOp.SUM)
        train_loss = float(step_sums[0] / step_sums[1])
        tokens_seen += int(step_sums[2])
        if not math.isfinite(train_loss):
            ids = [train_ids[p] for p in step_positions]
            raise FloatingPointError(f"non-finite training loss at step {step + 1}; rank {rank} items {ids}")
        elapsed = time.perf_counter() - step_started
        throughput = tokens_seen / elapsed  # tokens/s over all ranks, evaluation time included
        logger.log({"train_loss": train_loss, "lr": scheduler.get_last_lr()[0], "tokens_per_s": throughput}, step + 1)
    logger.write_consumed(_gather(consumed, world_size), train_ids)
    logger.flush()
    # One report per worker at the end: a report blocks until Ray Train's controller polls (~1-2 s), so
    # per-step curves go straight to MLflow from rank 0 instead.
    ray.train.report({"step": plan.total_steps, **metrics})


def _gather(consumed: list[list[int]], world_size: int) -> list[list[list[int]]]:
    """Every rank's own record of what it consumed, collected on all ranks."""
    if world_size == 1:
        return [consumed]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, consumed)
    return gathered


class _RankZeroLogger:
    """MLflow logging from rank 0 only; other ranks do nothing."""

    def __init__(self, inputs: WorkerInputs, rank: int):
        self._run = inputs.run if rank == 0 else None
        self._buffer = None if self._run is None else self._run.metric_buffer()

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._buffer is not None:
            self._buffer.add(metrics, step)

    def flush(self) -> None:
        if self._buffer is not None:
            self._buffer.flush()

    def write_consumed(self, per_rank: list[list[list[int]]], train_ids: list[str]) -> None:
        """The audit trail: per rank, per step, the arrangement positions and ids it trained on."""
        if self._run is None:
            return
        record = {
            "world_size": len(per_rank),
            "ranks": [
                [{"positions": step, "ids": [train_ids[p] for p in step]} for step in steps] for steps in per_rank
            ],
        }
        self._run.log_json("consumed.json", record)
