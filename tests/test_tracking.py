"""The MLflow run lifecycle (dynamics.tracking) on a real SQLite store, read back with MlflowClient."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.entities import Experiment
from mlflow.tracking import MlflowClient

from dynamics.tracking import (
    PARENT_TAG,
    TrackedRun,
    child_runs,
    client_for,
    ends_on_error,
    experiment_id,
    sqlite_path,
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


class FakeLateClient(MlflowClient):
    """Reads experiment names as missing once: a process whose read came just before another process's create."""

    def __init__(self, tracking_uri: str):
        super().__init__(tracking_uri)
        self.missed = False

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        if not self.missed:
            self.missed = True
            return None
        return super().get_experiment_by_name(name)


def test_an_experiment_created_by_another_process_meanwhile_is_reused(uri: str) -> None:
    existing = experiment_id(client_for(uri), "created-meanwhile")
    late = FakeLateClient(uri)
    assert experiment_id(late, "created-meanwhile") == existing and late.missed


def test_the_experiment_is_marked_as_model_training_for_the_ui(uri: str) -> None:
    client = MlflowClient(uri)
    start_sweep_run(uri, "marked-at-birth", "s", params={})
    assert client.get_experiment_by_name("marked-at-birth").tags["mlflow.experimentKind"] == "custom_model_development"
    older = client.create_experiment("made-before-the-mark")  # as a store from an older version holds it
    assert "mlflow.experimentKind" not in client.get_experiment(older).tags
    start_sweep_run(uri, "made-before-the-mark", "s", params={})
    assert client.get_experiment(older).tags["mlflow.experimentKind"] == "custom_model_development"


def test_sqlite_paths_of_tracking_uris(tmp_path: Path) -> None:
    assert sqlite_path(f"sqlite:///{tmp_path}/mlflow.db") == tmp_path / "mlflow.db"
    assert sqlite_path("sqlite:///runs/mlflow.db?timeout=20") == Path("runs/mlflow.db")
    assert sqlite_path("sqlite:///:memory:") is None and sqlite_path("http://head:5000") is None


RACER = """
import os, sys
from dynamics.tracking import start_sweep_run
for uri in sys.argv[1:]:
    print("ready", flush=True)
    sys.stdin.readline()  # the go signal, sent to every racer at once
    try:
        start_sweep_run(uri, "race", f"racer-{os.getpid()}", params={"pid": os.getpid()}).finish()
        print("ok", flush=True)
    except Exception as error:
        print("error", f"{type(error).__name__}: {error}".replace(chr(10), " ")[:300], flush=True)
"""


def test_processes_opening_a_fresh_store_at_once_all_succeed_and_leave_it_usable(tmp_path: Path) -> None:
    """Without the lock, 4 processes on a fresh store broke it for good in 3 of 5 tries (and errored in all 5)."""
    racers, rounds = 4, 3
    uris = [f"sqlite:///{tmp_path / f'round{k}' / 'mlflow.db'}" for k in range(rounds)]
    children = [
        subprocess.Popen([sys.executable, "-c", RACER, *uris], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(racers)
    ]
    pipes = [(child.stdin, child.stdout) for child in children if child.stdin and child.stdout]
    outcomes: list[list[str]] = []
    try:
        for _ in uris:
            assert [answers.readline().strip() for _, answers in pipes] == ["ready"] * racers
            for orders, _ in pipes:
                orders.write("go\n")
                orders.flush()
            outcomes.append([answers.readline().strip() for _, answers in pipes])
    finally:
        for (orders, _), child in zip(pipes, children, strict=True):
            orders.close()
            child.wait(timeout=120)
    assert outcomes == [["ok"] * racers] * rounds
    for uri in uris:
        client = MlflowClient(uri)  # a fresh open: verifies the schema is at MLflow's head revision
        (experiment,) = [e for e in client.search_experiments() if e.name == "race"]
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) == racers and {run.info.status for run in runs} == {"FINISHED"}
        assert Path(uri.removeprefix("sqlite:///")).with_name("mlflow.db.lock").exists()


def test_the_ui_link_opens_the_experiments_runs_not_the_genai_overview() -> None:
    from dynamics.tracking import ui_link

    # mlflow ui on 127.0.0.1 for a local store; the server itself for a tracking server
    assert ui_link("sqlite:///runs/offline/mlflow.db", "1") == (
        "http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning"
    )
    assert ui_link("http://mlflow.internal:5000/", "7") == (
        "http://mlflow.internal:5000/#/experiments/7?workflowType=machine_learning"
    )
