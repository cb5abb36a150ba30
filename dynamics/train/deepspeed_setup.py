"""DeepSpeed engine config, memory settings and the learning-rate schedule of SPEC §3.

A plain torch optimizer is passed to `deepspeed.initialize` rather than one named in the DeepSpeed config:
the named ones compile extra C++ ops on first use (≈80 s on CPU), the torch one needs nothing. ZeRO-Offload of
the optimizer is the exception (`dynamics.train.optimizer`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch

from dynamics.config import TrainConfig

# ZeRO-3 sizes when the model's width is unknown: DeepSpeed's own defaults.
_DEFAULT_PREFETCH = 50_000_000
_DEFAULT_PERSISTENCE = 100_000
_BUCKET = 500_000_000  # elements per ZeRO-2 reduce / all-gather bucket (DeepSpeed's default)


class BatchGeometry(Protocol):
    global_batch_size: int
    micro_batch_size: int

    @property
    def accumulation_steps(self) -> int: ...


def _zero_section(config: TrainConfig, hidden_size: int | None, has_cuda: bool) -> dict[str, Any]:
    """ZeRO settings per stage; the ZeRO-3 sizes follow the HF integration's formulas from the model width."""
    zero: dict[str, Any] = {"stage": config.zero_stage}
    if config.zero_stage >= 2:
        zero |= {"overlap_comm": has_cuda, "contiguous_gradients": True}
        zero |= {"reduce_bucket_size": hidden_size * hidden_size if hidden_size else _BUCKET}
    if config.zero_stage == 2:
        zero["allgather_bucket_size"] = _BUCKET
    if config.zero_stage == 3:
        zero |= {
            "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size) if hidden_size else _DEFAULT_PREFETCH,
            "stage3_param_persistence_threshold": 10 * hidden_size if hidden_size else _DEFAULT_PERSISTENCE,
            "stage3_max_live_parameters": 1_000_000_000,
            "stage3_max_reuse_distance": 1_000_000_000,
            "stage3_gather_16bit_weights_on_model_save": True,  # a saved model is whole, not shards
        }
    offload = {"device": "cpu", "pin_memory": has_cuda}  # pinned memory needs a CUDA host allocator
    if config.offload_optimizer:
        zero["offload_optimizer"] = offload
    if config.offload_params:
        zero["offload_param"] = offload
    return zero


def deepspeed_config(
    config: TrainConfig, plan: BatchGeometry, hidden_size: int | None = None, has_cuda: bool = False
) -> dict[str, Any]:
    """The engine config: batch geometry from the step plan, ZeRO stage, precision and offload from `config`."""
    bf16 = config.precision == "bf16"
    engine: dict[str, Any] = {
        "train_batch_size": plan.global_batch_size,
        "train_micro_batch_size_per_gpu": plan.micro_batch_size,
        "gradient_accumulation_steps": plan.accumulation_steps,
        "gradient_clipping": config.grad_clip,
        "zero_optimization": _zero_section(config, hidden_size, has_cuda),
        "bf16": {"enabled": bf16},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if bf16 and plan.accumulation_steps > 1:
        # Summing micro-batch gradients in bf16 loses their low bits; accumulate in fp32 instead.
        engine["data_types"] = {"grad_accum_dtype": "fp32"}
    return engine


def apply_memory_settings(model: torch.nn.Module, config: TrainConfig) -> None:
    """Activation checkpointing as configured (non-reentrant, which works with ZeRO-3 and frozen inputs)."""
    if config.gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5.24; the old name warns
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        model.config.use_cache = False  # a KV cache is useless in training and clashes with recomputation


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak lr at optimizer step s: linear warm-up, then cosine-to-floor, linear or constant."""
    warmup = config.warmup_steps
    decay_steps = max(1, total_steps - warmup)

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / decay_steps)
        if config.schedule == "constant":
            return 1.0
        if config.schedule == "linear":
            return 1.0 - progress
        floor = config.min_lr_ratio
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return multiplier
