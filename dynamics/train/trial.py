"""One trial: open its MLflow child run, fit a `TorchTrainer` of DeepSpeed workers (Ray Train V2), end the run.

The trial knows nothing of the grid: the sweep resolves a grid point into a `TrialSpec` (what to train, on
which items in which order, how it is named and tracked), and this module runs it. Called from a Ray Tune
function, so one trial's failure ends its own run FAILED with the error and leaves the others running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from dynamics.config import CheckpointConfig, EvaluateConfig, ScalingConfig, TrainConfig
from dynamics.io import filesystem_name
from dynamics.models import ModelSource
from dynamics.tracking import TrackedRun, ends_on_error, find_trial_run, start_trial_run
from dynamics.train.checkpoint_scoring import CheckpointScorer, trial_scorer
from dynamics.train.checkpoints import newest_in_storage
from dynamics.train.loop import WorkerInputs, train_loop_per_worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialSpec:
    """A trial resolved on the driver: everything it trains on and everything its run records."""

    name: str  # the child run's name, e.g. "n=160 model=tiny-2m perm=nft seed=0"
    sweep_name: str
    params: Mapping[str, object]  # MLflow params: the grid factors and the settings a reader compares by
    tags: Mapping[str, str]
    model: ModelSource
    train: TrainConfig
    scaling: ScalingConfig
    arranged: pa.Table  # id, messages of the training items, in training order
    test: pa.Table  # id, task, category, messages, references
    sweep_run: TrackedRun
    storage_path: str
    seed: int = 0  # the grid's seed: new embedding rows, dropout, per-epoch reshuffles
    checkpoints: CheckpointConfig = CheckpointConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    reward_model: str | None = None  # folder or hub name of evaluate.reward_model, materialised on the driver
    eval_sets: tuple[tuple[str, pa.Table], ...] = ()  # evaluate.sets: (name, its rows as `test` has them)


def worker_resources(scaling: ScalingConfig) -> dict[str, float]:
    """What Ray reserves for each training worker of a trial."""
    resources = {"CPU": scaling.cpus_per_worker}
    if scaling.use_gpu:
        resources["GPU"] = scaling.gpus_per_worker
    return resources


def trial_shape(scaling: ScalingConfig, train: TrainConfig) -> str:
    """The placement group one trial asks for and how its batch splits, in one line for people."""
    resources = ", ".join(f"{name} {amount:g}" for name, amount in worker_resources(scaling).items())
    per_rank = train.global_batch_size // scaling.num_workers
    return (
        f"{scaling.num_workers} workers × {{{resources}}}, ZeRO-{train.zero_stage} {train.precision}, global batch "
        f"{train.global_batch_size} = {scaling.num_workers} ranks × {per_rank // train.micro_batch_size} "
        f"accumulation × micro {train.micro_batch_size}"
    )


def tag_where_it_stopped(run: TrackedRun, storage_path: str, run_name: str) -> None:
    """Tag a failing trial's run with the last step it logged and the checkpoint it reached."""
    history = run.client.get_metric_history(run.run_id, "train_loss")
    reached = {"failed_after_step": max((point.step for point in history), default=0)}
    reached["last_checkpoint"] = newest_in_storage(storage_path, run_name) or "none"
    run.set_tags(reached)


def run_trial(spec: TrialSpec, started: float | None = None) -> dict[str, float]:
    """Train one trial to the end; its final metrics. The child run ends FINISHED, or FAILED with the error."""
    from ray.train import CheckpointConfig as RayCheckpointConfig
    from ray.train import FailureConfig, RunConfig
    from ray.train import ScalingConfig as RayScalingConfig
    from ray.train.torch import TorchTrainer

    started = time.time() if started is None else started
    shape = trial_shape(spec.scaling, spec.train)
    existing = find_trial_run(spec.sweep_run, spec.name)  # a resumed sweep re-attaches to its trials' runs
    if existing is not None and existing.info.status == "FINISHED":
        log.info("trial %s finished before (run %s): not trained again", spec.name, existing.info.run_id)
        return dict(existing.data.metrics)
    if existing is None:
        run = start_trial_run(spec.sweep_run, spec.name, spec.params, dict(spec.tags) | {"placement_group": shape})
    else:
        # Its Train run name (with this run's id) is the same, so Ray Train restores its checkpoints.
        run = TrackedRun(spec.sweep_run.tracking_uri, existing.info.run_id).reopen()
        log.info("trial %s: continuing run %s (was %s)", spec.name, run.run_id, existing.info.status)
    log.info("trial %s: %s", spec.name, shape)
    run_name = filesystem_name(f"{spec.sweep_name}-{spec.name}-{run.run_id[:8]}")
    inputs = WorkerInputs(
        spec.model,
        spec.train,
        spec.arranged,
        spec.test,
        run,
        trial_started_at=started,
        seed=spec.seed,
        checkpoints=spec.checkpoints,
        eval_root=f"{spec.storage_path.rstrip('/')}/{run_name}/eval",
        evaluate=spec.evaluate,
        reward_model=spec.reward_model,
        eval_sets=spec.eval_sets,
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"inputs": inputs},
        scaling_config=RayScalingConfig(
            num_workers=spec.scaling.num_workers,
            use_gpu=spec.scaling.use_gpu,
            resources_per_worker=worker_resources(spec.scaling),
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=spec.storage_path,
            checkpoint_config=RayCheckpointConfig(num_to_keep=spec.checkpoints.num_to_keep),
            # A worker group that cannot be scheduled is not retried forever (Ray's default is unlimited).
            failure_config=FailureConfig(max_failures=spec.checkpoints.max_failures, controller_failure_limit=3),
        ),
    )
    scored = spec.evaluate.on_checkpoints
    scorer: CheckpointScorer | None = None
    with ends_on_error(run):
        if scored is not None:
            scorer = trial_scorer(
                run,
                scored,
                spec.train,
                spec.evaluate,
                spec.scaling,
                spec.test,
                spec.model,
                spec.reward_model,
                spec.seed,
            )
            if scored.while_training:
                scorer.start()
        try:
            result = trainer.fit()
        except BaseException as error:
            if scorer is not None:
                scorer.cancel()
            if isinstance(error, Exception):
                tag_where_it_stopped(run, spec.storage_path, run_name)
            raise
        if scorer is not None:  # a scoring error fails the trial: its metrics would be missing, not zero
            steps = scorer.finish()
            log.info("trial %s: scored the checkpoints of steps %s", spec.name, steps)
    run.finish()
    return {k: v for k, v in (result.metrics or {}).items() if isinstance(v, int | float)}
