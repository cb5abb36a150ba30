"""One optimizer step of the ordered plan on a DeepSpeed engine: the same code on GPU (NCCL) and CPU (gloo).

Batches are collated on the host and moved to `engine.device`; the step's sums are reduced on that device too,
since NCCL rejects CPU tensors. Every rank runs the same number of micro-batches (an empty one is a placeholder
of one pad token whose loss weighs 0), so ZeRO-3's per-layer collectives and ZeRO-2's gradient reductions always
pair up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dynamics.text.batching import collate, token_nll
from dynamics.text.encoding import IGNORE_INDEX, EncodedExample
from dynamics.train.sharding import StepPlan


def on_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on the engine's device (pinned host memory would only pay off with a prefetching loader)."""
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


@dataclass(frozen=True)
class StepOutcome:
    """What one optimizer step did, summed over every rank."""

    loss: float  # mean over the step's micro-batches of their token-averaged loss, as the gradient saw it
    target_tokens: int
    input_tokens: int  # non-pad tokens through the model, for tokens/s and MFU
    positions: list[int]  # this rank's arrangement positions, in the order it trained on them


def train_step(
    engine, plan: StepPlan, step: int, examples: Sequence[EncodedExample], pad_id: int, world_size: int
) -> StepOutcome:
    """Forward, backward and (at the accumulation boundary) the optimizer step for global step `step`."""
    device = engine.device
    placeholder = EncodedExample([pad_id], [IGNORE_INDEX])  # one attended pad token: no target, next to no compute
    # [Σ weighted micro-batch loss / (accumulation · world), target tokens, input tokens], on the device
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    positions: list[int] = []
    scale = plan.accumulation_steps * world_size
    for micro in plan.micro_batches(step):
        chosen = [examples[position] for position in micro.positions] or [placeholder]
        batch = on_device(collate(chosen, pad_id), device)
        # No KV cache: training never reuses one, and building it costs a copy of every layer's keys and values.
        logits = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        nll_sum, count = token_nll(logits, batch["labels"])
        loss = nll_sum.sum() / count.sum().clamp(min=1.0)  # token-averaged per micro-batch (SPEC §3)
        engine.backward(loss * micro.loss_weight)  # DeepSpeed divides by the accumulation steps
        engine.step()
        if micro.positions:
            positions.extend(micro.positions)
            sums[0] += loss.detach().double() * micro.loss_weight / scale
            sums[1] += count.sum().double()
            sums[2] += batch["attention_mask"].sum().double()
    if world_size > 1:
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
    loss_sum, targets, inputs = sums.tolist()  # one device sync per step
    return StepOutcome(loss_sum, int(targets), int(inputs), positions)
