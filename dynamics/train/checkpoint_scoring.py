"""`evaluate.on_checkpoints`: a trial's eval checkpoints (and the base model, as step 0) are scored in Ray tasks of
one training worker's size each, and the metrics logged to its run at each checkpoint's step, beside what the loop
logged.

Scoring runs while the trial trains (`while_training`, the default): a thread of the trial's driver watches the
run's `eval_checkpoint/step-N` tags, which rank 0 sets once a folder is written, hands each new checkpoint to a
task and logs its metrics the moment it is done. The training workers never wait for a generation pass: where the
cluster has room for a scoring task (a spare GPU, an autoscaled node), Study B's generation metrics cost the
trial's critical path only the checkpoint's write; where it has none, the tasks wait and run as trials free their
resources. After training, the driver scores what is left and waits for every task, so a FINISHED run holds every
point. A step whose `scoring_s/…` is already logged (a resumed trial) is not scored again. Deleting a checkpoint
once scored also drops its run tag, so a later `dynamics evaluate --run` never looks for a folder that is gone."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pyarrow as pa

from dynamics.config import CheckpointMetrics, EvaluateConfig, ScalingConfig, TrainConfig
from dynamics.evaluate.offline import CHECKPOINT_TAG, OfflineEvaluation, checkpoints_of, log_scores, score_checkpoint
from dynamics.models import ModelSource
from dynamics.tracking import TrackedRun
from dynamics.train.checkpoints import folder_name

log = logging.getLogger(__name__)

DELETED_TAG = "eval_checkpoints_deleted"
SCORING_PREFIX = "scoring_s/"  # every scored step logs what it cost under this prefix


def scoring_resources(scaling: ScalingConfig) -> dict[str, float]:
    """What one scoring task reserves: one training worker's CPUs and GPUs (a checkpoint fits where a rank did
    only under ZeRO-0/1/2; a ZeRO-3 model larger than one GPU needs `dynamics evaluate` on a bigger node)."""
    resources = {"num_cpus": scaling.cpus_per_worker}
    if scaling.use_gpu:
        resources["num_gpus"] = scaling.gpus_per_worker
    return resources


class CheckpointScorer:
    """Scores a run's eval checkpoints as they appear, one Ray task each, and logs each one's metrics at its step
    once it is done. `start()` watches the run in a thread (while the trial trains); `finish()` scores what is
    left, waits for every task and raises the first scoring error (a missing metric fails the trial, never reads
    as zero); `cancel()` drops what is pending (a trial that failed)."""

    def __init__(
        self,
        run: TrackedRun,
        request: OfflineEvaluation,
        resources: dict[str, float],
        base_model: ModelSource | None = None,
        delete_checkpoints: bool = False,
        poll_s: float = 2.0,
    ):
        import ray

        self._run, self._resources, self._base_model = run, resources, base_model
        self._delete, self._poll_s = delete_checkpoints, poll_s
        self._request_ref = None
        self._request = request
        self._task = ray.remote(score_checkpoint).options(scheduling_strategy="DEFAULT", **resources)
        self._pending: dict = {}  # ObjectRef → (step, checkpoint URI or the base model)
        held = run.logged_steps()
        self._scored_before = {step for key, steps in held.items() if key.startswith(SCORING_PREFIX) for step in steps}
        self._submitted: set[int] = set(self._scored_before)
        self.scored: list[int] = []  # steps scored and logged by this scorer
        deleted = run.get().data.tags.get(DELETED_TAG, "")
        self._deleted = {int(step) for step in deleted.split(",") if step}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> CheckpointScorer:
        self._thread = threading.Thread(
            target=self._watch, name=f"score-checkpoints-{self._run.run_id[:8]}", daemon=True
        )
        self._thread.start()
        return self

    def _watch(self) -> None:
        try:
            while True:
                self._submit_new()
                self._collect(timeout=0)
                if self._stop.wait(self._poll_s):
                    return
        except BaseException as error:  # re-raised by finish() on the trial's thread
            self._error = error

    def _join(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def finish(self) -> list[int]:
        """Score every checkpoint not scored yet, wait for all of them; the steps this scorer logged."""
        self._join()
        if self._error is not None:
            self.cancel()
            raise self._error
        self._submit_new()
        self._collect(timeout=None)
        return sorted(self.scored)

    def cancel(self) -> None:
        import ray

        self._join()
        for ref in self._pending:
            ray.cancel(ref)
        self._pending.clear()

    def _submit_new(self) -> None:
        import ray

        targets: dict[int, str | ModelSource] = dict(checkpoints_of(self._run))
        if self._base_model is not None:
            targets = {0: self._base_model} | targets
        for step, target in targets.items():
            if step in self._scored_before and isinstance(target, str) and self._delete:
                self._remove(step, target)  # scored by an earlier attempt that died before deleting it
            if step in self._submitted:
                continue
            if self._request_ref is None:
                self._request_ref = ray.put(self._request)
            log.info("scoring the checkpoint of step %d of run %s", step, self._run.run_id)
            self._pending[self._task.remote(target, self._request_ref)] = (step, target)
            self._submitted.add(step)

    def _collect(self, timeout: float | None) -> None:
        import ray

        if not self._pending:
            return
        ready, _ = ray.wait(list(self._pending), num_returns=len(self._pending), timeout=timeout)
        for ref in ready:
            step, target = self._pending.pop(ref)
            log_scores(self._run, {step: ray.get(ref)})
            self.scored.append(step)
            if isinstance(target, str) and self._delete:
                self._remove(step, target)

    def _remove(self, step: int, uri: str) -> None:
        _delete(uri)
        self._run.client.delete_tag(self._run.run_id, f"{CHECKPOINT_TAG}{folder_name(step)}")
        self._deleted.add(step)
        self._run.set_tags({DELETED_TAG: ",".join(str(s) for s in sorted(self._deleted))})


def trial_scorer(
    run: TrackedRun,
    scored: CheckpointMetrics,
    train: TrainConfig,
    evaluate: EvaluateConfig,
    scaling: ScalingConfig,
    test: pa.Table,
    base_model: ModelSource,
    reward_model: str | None,
    seed: int,
    poll_s: float = 2.0,
) -> CheckpointScorer:
    """The scorer of one trial's `evaluate.on_checkpoints` (not started), watching its run every `poll_s`."""
    if scored.base_model and base_model.tokenizer != base_model.model:  # a scored folder brings its tokenizer
        log.warning("step 0 not scored: the tokenizer of %s is %s", base_model.model, base_model.tokenizer)
    request = OfflineEvaluation(
        train=train,
        evaluate=evaluate,
        metrics=tuple(scored.metrics),
        subset=scored.subset,
        test_rows=tuple(test.to_pylist()),
        reward_model=reward_model,
        seed=seed,
    )
    return CheckpointScorer(
        run,
        request,
        scoring_resources(scaling),
        base_model if scored.base_model and base_model.tokenizer == base_model.model else None,
        scored.delete_checkpoints,
        poll_s,
    )


def _delete(uri: str) -> None:
    """Remove an eval checkpoint folder, local or on a pyarrow filesystem (s3://, gs://, …)."""
    if "://" not in uri:
        shutil.rmtree(Path(uri), ignore_errors=True)
        return
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    filesystem.delete_dir(path)
