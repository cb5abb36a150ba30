"""The MLflow run lifecycle, owned here: one parent run per sweep, one child run per trial.

A `TrackedRun` is a store URI and a run id, small and picklable, so the driver, a Tune trial and a training
worker on another node all address the same run. Metrics use `step = global optimizer step`, so the curves
of different trials line up in the MLflow UI; they are written in batches of at most 1000.

    sweep = start_sweep_run(uri, "dynamics-offline", "offline-study", params={...})
    with ends_on_error(sweep):                       # an exception ends the run FAILED, Ctrl-C KILLED
        trial = start_trial_run(sweep, "n=160 model=tiny-2m perm=nft seed=0", params={...}, tags={...})
        trial.metric_buffer().add({"test_loss/macro": 4.2}, step=0)
        trial.finish()

A fresh SQLite store is created and migrated by whichever process opens it first; `client_for` does that under
an exclusive lock on `mlflow.db.lock` beside the database, since two sweeps opening one fresh store at once
race in MLflow's migration and leave the database unusable for good (3 of 5 tries with 4 processes, measured).
"""

from __future__ import annotations

import fcntl
import functools
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

PARENT_TAG = "mlflow.parentRunId"
MAX_BATCH = 1000  # MLflow's limit on metrics per log_batch call
MAX_ERROR_CHARS = 5000  # MLflow tag values are capped; the head of an error is what a reader needs


def default_tracking_uri(workdir: Path) -> str:
    """The embedded store: a SQLite file in the workdir (MLflow 3 refuses plain file stores)."""
    return f"sqlite:///{workdir.resolve() / 'mlflow.db'}"


def resolve_tracking_uri(config_uri: str | None, workdir: Path) -> str:
    """The store a sweep writes to: `tracking.uri`, else `MLFLOW_TRACKING_URI` (how cluster launchers point
    every job at the head's server), else the embedded SQLite file in the workdir."""
    return config_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(workdir)


def artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database, not in `./mlruns` of whatever the cwd is."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None  # a tracking server decides


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI; None for any other store (and for an in-memory database)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri.removeprefix("sqlite:///").partition("?")[0]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock_path`, waiting for it; the kernel drops it if this process dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


@functools.lru_cache(maxsize=8)
def client_for(tracking_uri: str) -> MlflowClient:
    """One client per store and process; a SQLite store is created and migrated under its lock file.

    MLflow creates and migrates a SQLite store's tables on the first connection without any lock of its own, so
    processes opening one fresh store at once corrupt its schema. Inside `mlflow.db.lock` the first one builds
    it (~3 s, measured) while the others wait, then find it complete and only open it (~1 s, as without the lock).
    """
    database = sqlite_path(tracking_uri)
    if database is None:
        return MlflowClient(tracking_uri)
    with _exclusive(database.with_name(database.name + ".lock")):
        client = MlflowClient(tracking_uri)  # opens the store: creates and migrates the tables if missing
        client.search_experiments(max_results=1)  # and proves the schema usable before anyone else goes on
    return client


# MLflow 3's UI opens an experiment without this tag on the GenAI "Overview" of traces, which a sweep has none
# of; "custom_model_development" ("Machine learning" in the UI) opens it on its runs and their metric charts.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def experiment_id(client: MlflowClient, name: str) -> str:
    """Id of experiment `name`, created if missing (by this process or by another one at the same moment), and
    marked as model training for the UI (an experiment created before the mark gets it now)."""
    experiment = client.get_experiment_by_name(name)
    if experiment:
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment.experiment_id
    try:
        return client.create_experiment(
            name, artifact_location=artifact_root(client.tracking_uri), tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    # Another sweep created it between our read and our create: theirs is the one to use.
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise MlflowException(f"experiment {name!r} exists by MLflow's word but cannot be read back")
    return experiment.experiment_id


@dataclass(frozen=True)
class TrackedRun:
    """One MLflow run, addressed by store and id from any process."""

    tracking_uri: str
    run_id: str

    @property
    def client(self) -> MlflowClient:
        return client_for(self.tracking_uri)

    def get(self) -> Run:
        return self.client.get_run(self.run_id)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.client.log_metric(self.run_id, key, value, step=step)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def log_artifacts(self, folder: Path | str, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path=artifact_path)

    def log_json(self, name: str, record: Any) -> None:
        """`record` as the artifact `name` (a JSON file), written through a temporary folder."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_text(json.dumps(record), encoding="utf-8")
            self.log_artifact(path)

    def metric_buffer(self, skip: Mapping[str, set[int]] | None = None) -> MetricBuffer:
        """A buffer of metric points for this run; points in `skip` (key → steps) are left out."""
        return MetricBuffer(self, skip)

    def logged_steps(self) -> dict[str, set[int]]:
        """key → the steps this run holds a value for: what a resumed attempt must not log again."""
        keys = self.get().data.metrics
        return {key: {point.step for point in self.client.get_metric_history(self.run_id, key)} for key in keys}

    def finish(self) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED")

    def fail(self, error: BaseException | str) -> None:
        """End the run FAILED with the error as its `error` tag."""
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.set_tags({"error": message[:MAX_ERROR_CHARS]})
        self.client.set_terminated(self.run_id, status="FAILED")

    def kill(self) -> None:
        self.client.set_terminated(self.run_id, status="KILLED")

    def reopen(self) -> TrackedRun:
        """Mark an ended (or orphaned) run RUNNING again: a resumed sweep or trial continues in it."""
        self.client.update_run(self.run_id, status="RUNNING")
        return self


def _start_run(
    tracking_uri: str, experiment: str, name: str, params: Mapping[str, object], tags: Mapping[str, object]
) -> TrackedRun:
    client = client_for(tracking_uri)
    run = client.create_run(experiment, run_name=name, tags={k: str(v) for k, v in tags.items()})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return TrackedRun(tracking_uri, run.info.run_id)


def start_sweep_run(
    tracking_uri: str,
    experiment: str,
    name: str,
    params: Mapping[str, object],
    tags: Mapping[str, object] | None = None,
) -> TrackedRun:
    """The parent run of a sweep, in experiment `experiment` (created if missing)."""
    return _start_run(tracking_uri, experiment_id(client_for(tracking_uri), experiment), name, params, tags or {})


def start_trial_run(
    parent: TrackedRun, name: str, params: Mapping[str, object], tags: Mapping[str, object] | None = None
) -> TrackedRun:
    """A child run of `parent`, in the parent's experiment."""
    experiment = parent.get().info.experiment_id
    return _start_run(parent.tracking_uri, experiment, name, params, {**(tags or {}), PARENT_TAG: parent.run_id})


def child_runs(parent: TrackedRun) -> list[Run]:
    """The trials of a sweep: runs whose parent tag is `parent`."""
    return parent.client.search_runs(
        [parent.get().info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}'",
        max_results=10000,
    )


def find_sweep_run(tracking_uri: str, experiment: str, name: str) -> Run | None:
    """The parent run of the sweep called `name` in `experiment`, or None; the newest if an older store holds
    several (before sweeps were refused a second start under one name)."""
    client = client_for(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    quoted = name.replace("'", "\\'")
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"attributes.run_name = '{quoted}' and tags.`{PARENT_TAG}` IS NULL",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def find_trial_run(parent: TrackedRun, name: str) -> Run | None:
    """The child run of `parent` called `name`, or None (the newest, should there be several)."""
    quoted = name.replace("'", "\\'")
    runs = parent.client.search_runs(
        [parent.get().info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}' and attributes.run_name = '{quoted}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


@contextmanager
def ends_on_error(run: TrackedRun) -> Iterator[TrackedRun]:
    """Inside the block, an exception ends `run` FAILED (Ctrl-C: KILLED) before it propagates: never RUNNING."""
    try:
        yield run
    except KeyboardInterrupt:
        run.kill()
        raise
    except BaseException as error:
        run.fail(error)
        raise


class MetricBuffer:
    """Collects (metrics, step) points and writes them in few `log_batch` calls, each (key, step) once.

    A resumed trial retrains the steps after its checkpoint; the points its dead attempt had already written
    are passed as `skip`, and the first value written is the one that stays (the retrained ones are the same
    numbers on CPU; timings differ).
    """

    def __init__(self, run: TrackedRun, skip: Mapping[str, set[int]] | None = None):
        self._run = run
        self._pending: list[Metric] = []
        self._skip = {key: set(steps) for key, steps in (skip or {}).items()}

    def add(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue metrics for `step`; a non-finite value is an error, never silently dropped."""
        timestamp = int(time.time() * 1000)
        for key, value in metrics.items():
            if not math.isfinite(value):
                raise FloatingPointError(f"metric {key!r} is {value} at step {step}")
            if step in self._skip.get(key, ()):
                continue
            self._pending.append(Metric(key, float(value), timestamp, step))

    def flush(self) -> None:
        for start in range(0, len(self._pending), MAX_BATCH):
            self._run.client.log_batch(self._run.run_id, metrics=self._pending[start : start + MAX_BATCH])
        self._pending.clear()


UI_PORT = 5000  # `mlflow ui`'s default port
# MLflow 3's UI opens an experiment on its GenAI overview of traces unless this asks for the training view.
UI_VIEW = "workflowType=machine_learning"


def is_tracking_server(tracking_uri: str) -> bool:
    """An MLflow tracking server (http/https), not a store this process opens itself."""
    return tracking_uri.startswith(("http://", "https://"))


def ui_link(tracking_uri: str, experiment: str) -> str:
    """Where a person sees experiment `experiment`'s runs: the tracking server's own page, or for a local store
    what `mlflow ui --host 127.0.0.1` serves; opened on the runs, not on the GenAI overview."""
    base = tracking_uri.rstrip("/") if is_tracking_server(tracking_uri) else f"http://127.0.0.1:{UI_PORT}"
    return f"{base}/#/experiments/{experiment}?{UI_VIEW}"
