"""A sweep whose driver dies (SIGKILL) after its first trial finished: `--resume` runs only the rest, in the same
parent run, and the refusals around it (a second start under the name, nothing to resume, a changed config) are
clear and come before any Ray work. Observed from outside: the MLflow store and Tune's trial folders."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sweep_process import SweepProcess, tiny_study, write_config

from dynamics.cli import main
from dynamics.tracking import client_for, default_tracking_uri


def _runs(work: Path) -> tuple[list, list]:
    client = client_for(default_tracking_uri(work))  # under the store's lock: the sweep may be creating it
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return parents, [run for run in runs if "mlflow.parentRunId" in run.data.tags]


def _wait_for_a_finished_trial(work: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (work / "mlflow.db").exists() and any(r.info.status == "FINISHED" for r in _runs(work)[1]):
            return
        time.sleep(0.5)
    raise AssertionError(f"no trial finished within {timeout_s:.0f} s")


def _trial_folders(work: Path, parent_id: str) -> list[str]:
    return sorted(
        path.name for path in (work / "ray_results" / f"tiny-{parent_id[:8]}").glob("tune_trial_*") if path.is_dir()
    )


def test_a_killed_driver_resumes_only_the_unfinished_trials(tmp_path, no_ray, capsys):
    work = tmp_path / "work"
    config = tiny_study(work, grid={"volume": [32, 64], "model": ["tiny"], "permutation": ["nft"], "seed": [0]})
    config_path = write_config(tmp_path, config)

    first = SweepProcess(config_path, tmp_path)
    _wait_for_a_finished_trial(work, timeout_s=400)
    os.kill(first.process.pid, signal.SIGKILL)  # the driver alone: no handler runs, nothing is cleaned up
    assert first.wait(timeout_s=30) == -signal.SIGKILL
    (parent,), children = _runs(work)
    finished = {run.info.run_name: run for run in children if run.info.status == "FINISHED"}
    assert len(finished) == 1, [(r.info.run_name, r.info.status) for r in children]
    assert parent.info.status == "RUNNING"  # the driver died before it could end it

    resumed = SweepProcess(config_path, tmp_path, "--resume")
    assert resumed.wait(timeout_s=600) == 0, resumed.output()[-3000:]
    assert "sweep finished: 2 trials (0 failed)" in resumed.output()

    (again,), children = _runs(work)
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    names = sorted(run.info.run_name for run in children)
    assert names == ["n=32 model=tiny perm=nft seed=0", "n=64 model=tiny perm=nft seed=0"]
    assert {run.info.status for run in children} == {"FINISHED"}
    ((name, before),) = finished.items()
    (after,) = [run for run in children if run.info.run_name == name]
    assert (after.info.run_id, after.info.end_time) == (before.info.run_id, before.info.end_time)  # not rerun
    assert len(_trial_folders(work, parent.info.run_id)) == 2
    client = client_for(default_tracking_uri(work))
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert steps and len(steps) == len(set(steps)), (run.info.run_name, steps)

    # Around it, each refused before Ray starts (`no_ray`), naming what to do.
    capsys.readouterr()
    assert main(["sweep", "--config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert "a sweep named 'tiny' already exists" in err and "--resume" in err
    assert main(["sweep", "--config", str(config_path), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["sweep", "--config", str(config_path), "--resume", "--set", "train.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "config differs" in err and "train.lr" in err
    assert main(["sweep", "--config", str(config_path), "--resume", "--set", "name=other"]) == 2
    assert "nothing to resume: no sweep named 'other'" in capsys.readouterr().err
    parents, children_after = _runs(work)
    assert [run.info.run_id for run in parents] == [parent.info.run_id] and len(children_after) == 2
