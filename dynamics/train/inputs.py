"""What a trial's workers receive: one frozen value, shipped whole through Ray Train's `train_loop_config`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from dynamics.config import CheckpointConfig, EvaluateConfig, TrainConfig
from dynamics.models import ModelSource
from dynamics.tracking import TrackedRun


@dataclass(frozen=True)
class WorkerInputs:
    """Everything a worker needs, passed whole through `train_loop_config` (no dict round-trips)."""

    model: ModelSource
    train: TrainConfig
    arranged: pa.Table  # the training items in training order: id, messages
    test: pa.Table  # the test set: id, task, category, messages (and references, for generation metrics)
    run: TrackedRun | None = None  # the trial's MLflow run; rank 0 logs to it
    trial_started_at: float | None = None  # time.time() when the Tune trial began, for start-up figures
    seed: int = 0  # the trial's seed: model init of new rows, dropout, per-epoch reshuffles
    checkpoints: CheckpointConfig | None = None  # resume checkpoints; None = none (nothing to resume from)
    eval_root: str | None = None  # where eval checkpoints go (local path or URI); None = none are written
    evaluate: EvaluateConfig | None = None  # generation metrics in the loop; None = test loss only
    reward_model: str | None = None  # folder or hub name of evaluate.reward_model, resolved on the driver
    eval_sets: tuple[tuple[str, pa.Table], ...] = ()  # evaluate.sets: (name, rows with the columns of `test`)
    # Called on every rank after each optimizer step with (rank, steps completed, engine): for tests that kill
    # a worker or read its weights at a chosen step. A sweep never sets it.
    after_step: Callable[[int, int, Any], None] | None = None
