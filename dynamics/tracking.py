"""MLflow tracking: one parent run per sweep, one child run per trial, per-step metrics in batches.

Metrics use `step = global optimizer step`, so curves of different trials line up in the MLflow UI.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

PARENT_TAG = "mlflow.parentRunId"
MAX_BATCH = 1000  # MLflow's limit on metrics per log_batch call


def default_tracking_uri(workdir: Path) -> str:
    """The embedded store: a SQLite file in the workdir (MLflow 3 refuses plain file stores)."""
    return f"sqlite:///{workdir.resolve() / 'mlflow.db'}"


def artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database, not in `./mlruns` of whatever the cwd is."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None  # a tracking server decides


def experiment_id(client: MlflowClient, name: str) -> str:
    """Id of experiment `name`, created if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root(client.tracking_uri))


def start_run(
    client: MlflowClient,
    experiment: str,
    run_name: str,
    params: Mapping[str, object],
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
) -> str:
    """Create a run (a child when `parent_run_id` is given) with its params and tags; return its id."""
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    run = client.create_run(experiment_id(client, experiment), run_name=run_name, tags=all_tags)
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return run.info.run_id


class MetricBuffer:
    """Collects (metrics, step) points and writes them in few `log_batch` calls."""

    def __init__(self, client: MlflowClient, run_id: str):
        self._client = client
        self._run_id = run_id
        self._pending: list[Metric] = []

    def add(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue metrics for `step`; a non-finite value is an error, never silently dropped."""
        timestamp = int(time.time() * 1000)
        for key, value in metrics.items():
            if not math.isfinite(value):
                raise FloatingPointError(f"metric {key!r} is {value} at step {step}")
            self._pending.append(Metric(key, float(value), timestamp, step))

    def flush(self) -> None:
        for start in range(0, len(self._pending), MAX_BATCH):
            self._client.log_batch(self._run_id, metrics=self._pending[start : start + MAX_BATCH])
        self._pending.clear()


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
