"""DeepSpeed engine config and the learning-rate schedule of SPEC §3.

A plain torch optimizer is passed to `deepspeed.initialize` rather than one named in the DeepSpeed config:
the named ones compile extra C++ ops on first use (≈80 s on CPU), the torch one needs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dynamics.config import TrainConfig
from dynamics.train.sharding import StepPlan


def deepspeed_config(config: TrainConfig, plan: StepPlan) -> dict[str, Any]:
    """The engine config: batch geometry from the step plan, ZeRO stage and precision from the train config."""
    return {
        "train_batch_size": plan.global_batch_size,
        "train_micro_batch_size_per_gpu": plan.micro_batch_size,
        "gradient_accumulation_steps": plan.accumulation_steps,
        "gradient_clipping": config.grad_clip,
        "zero_optimization": {"stage": config.zero_stage},
        "bf16": {"enabled": config.precision == "bf16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


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
