"""`evaluate.on_checkpoints`: once a trial has trained, its eval checkpoints (and the base model, as step 0) are
scored in Ray tasks of one training worker's size each, and the metrics logged to its run at each checkpoint's
step, beside what the loop logged. Deleting a checkpoint once scored also drops its run tag, so a later
`dynamics evaluate --run` never looks for a folder that is gone."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pyarrow as pa

from dynamics.config import CheckpointMetrics, EvaluateConfig, ScalingConfig, TrainConfig
from dynamics.evaluate.offline import CHECKPOINT_TAG, OfflineEvaluation, checkpoints_of, log_scores, score_checkpoints
from dynamics.models import ModelSource
from dynamics.tracking import TrackedRun
from dynamics.train.checkpoints import folder_name

log = logging.getLogger(__name__)


def scoring_resources(scaling: ScalingConfig) -> dict[str, float]:
    """What one scoring task reserves: one training worker's CPUs and GPUs (a checkpoint fits where a rank did
    only under ZeRO-0/1/2; a ZeRO-3 model larger than one GPU needs `dynamics evaluate` on a bigger node)."""
    resources = {"num_cpus": scaling.cpus_per_worker}
    if scaling.use_gpu:
        resources["num_gpus"] = scaling.gpus_per_worker
    return resources


def score_trial_checkpoints(
    run: TrackedRun,
    scored: CheckpointMetrics,
    train: TrainConfig,
    evaluate: EvaluateConfig,
    scaling: ScalingConfig,
    test: pa.Table,
    base_model: ModelSource,
    reward_model: str | None,
    seed: int,
) -> list[int]:
    """Score every eval checkpoint of `run` (and `base_model` at step 0 when asked), log the metrics at their
    steps, delete the checkpoints if configured; the steps scored."""
    checkpoints = checkpoints_of(run)
    targets: dict[int, str | ModelSource] = dict(checkpoints)
    if scored.base_model and base_model.tokenizer == base_model.model:
        targets = {0: base_model} | targets
    elif scored.base_model:  # a scored folder brings its tokenizer; this model's lives elsewhere
        log.warning("step 0 not scored: the tokenizer of %s is %s", base_model.model, base_model.tokenizer)
    if not targets:
        return []
    request = OfflineEvaluation(
        train=train,
        evaluate=evaluate,
        metrics=tuple(scored.metrics),
        subset=scored.subset,
        test_rows=tuple(test.to_pylist()),
        reward_model=reward_model,
        seed=seed,
    )
    log.info("scoring %d checkpoint(s) of run %s: %s", len(targets), run.run_id, scored.metrics)
    log_scores(run, score_checkpoints(targets, request, scoring_resources(scaling)))
    if scored.delete_checkpoints:
        for step, uri in checkpoints.items():
            _delete(uri)
            run.client.delete_tag(run.run_id, f"{CHECKPOINT_TAG}{folder_name(step)}")
        run.set_tags({"eval_checkpoints_deleted": ",".join(str(step) for step in checkpoints)})
    return sorted(targets)


def _delete(uri: str) -> None:
    """Remove an eval checkpoint folder, local or on a pyarrow filesystem (s3://, gs://, …)."""
    if "://" not in uri:
        shutil.rmtree(Path(uri), ignore_errors=True)
        return
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    filesystem.delete_dir(path)
