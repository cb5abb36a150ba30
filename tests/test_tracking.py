"""The MLflow run lifecycle (dynamics.tracking) on a real SQLite store, read back with MlflowClient."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dynamics.tracking import (
    PARENT_TAG,
    TrackedRun,
    child_runs,
    ends_on_error,
    start_sweep_run,
    start_trial_run,
)


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the module: creating and migrating a SQLite store takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'mlflow.db'}"


def test_a_sweep_run_and_its_trials(uri: str) -> None:
    sweep = start_sweep_run(uri, "lifecycle", "my-sweep", params={"grid.volume": "[1, 2]"}, tags={"kind": "sweep"})
    trials = [start_trial_run(sweep, f"t{k}", params={"volume": k}, tags={"sweep": "my-sweep"}) for k in (1, 2)]
    client = MlflowClient(uri)
    parent = client.get_run(sweep.run_id)
    assert parent.info.run_name == "my-sweep" and parent.data.params == {"grid.volume": "[1, 2]"}
    assert parent.info.status == "RUNNING"
    found = child_runs(sweep)
    assert sorted(run.info.run_name for run in found) == ["t1", "t2"]
    for run in found:
        assert run.data.tags[PARENT_TAG] == sweep.run_id and run.data.tags["sweep"] == "my-sweep"
        assert run.info.experiment_id == parent.info.experiment_id
    trials[0].finish()
    trials[1].fail(ValueError("bad step"))
    assert client.get_run(trials[0].run_id).info.status == "FINISHED"
    failed = client.get_run(trials[1].run_id)
    assert failed.info.status == "FAILED" and failed.data.tags["error"] == "ValueError: bad step"


def test_an_error_inside_ends_on_error_fails_the_run_and_propagates(uri: str) -> None:
    run = start_sweep_run(uri, "lifecycle", "s", params={})
    with pytest.raises(RuntimeError, match="driver broke"), ends_on_error(run):
        raise RuntimeError("driver broke")
    record = MlflowClient(uri).get_run(run.run_id)
    assert record.info.status == "FAILED" and record.data.tags["error"] == "RuntimeError: driver broke"


def test_ctrl_c_inside_ends_on_error_kills_the_run(uri: str) -> None:
    run = start_sweep_run(uri, "lifecycle", "s", params={})
    with pytest.raises(KeyboardInterrupt), ends_on_error(run):
        raise KeyboardInterrupt
    assert MlflowClient(uri).get_run(run.run_id).info.status == "KILLED"


def test_metrics_are_batched_with_their_steps_and_non_finite_values_refused(uri: str) -> None:
    run = start_sweep_run(uri, "lifecycle", "s", params={})
    buffer = run.metric_buffer()
    for step in range(1200):  # more points than one log_batch call may carry
        buffer.add({"loss": 1.0 / (step + 1)}, step)
    buffer.flush()
    history = MlflowClient(uri).get_metric_history(run.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1200))
    with pytest.raises(FloatingPointError, match="metric 'loss' is nan at step 3"):
        buffer.add({"loss": float("nan")}, 3)


def test_a_handle_travels_to_another_process_and_logs_json(uri: str, tmp_path: Path) -> None:
    run = pickle.loads(pickle.dumps(start_sweep_run(uri, "lifecycle", "s", params={})))
    assert isinstance(run, TrackedRun)
    run.log_json("record.json", {"ranks": [[1, 2]]})
    local = MlflowClient(uri).download_artifacts(run.run_id, "record.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == {"ranks": [[1, 2]]}
