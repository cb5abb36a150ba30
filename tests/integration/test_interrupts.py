"""Ctrl-C during embedding and during training: out within 15 s, runs KILLED, no Ray process left, and the
same command with `--resume` then continues in the same runs and succeeds."""

from __future__ import annotations

import time

from mlflow.tracking import MlflowClient
from sweep_process import LONG_TRAINING, SweepProcess, tiny_study, wait_for_training, write_config

from dynamics.tracking import default_tracking_uri

EXIT_WITHIN_S = 15


def statuses(work) -> dict[str, list[str]]:
    """Run statuses of the tiny experiment: {'parent': [...], 'trials': [...]}."""
    client = MlflowClient(default_tracking_uri(work))
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return {
        "parent": [r.info.status for r in runs if "mlflow.parentRunId" not in r.data.tags],
        "trials": [r.info.status for r in runs if "mlflow.parentRunId" in r.data.tags],
    }


def interrupt_at(
    config_path, cwd, pattern: str | None, after_s: float = 0.0, *args: str
) -> tuple[SweepProcess, float]:
    """Interrupt when `pattern` shows in the output, or (None) once a trial has logged a metric."""
    sweep = SweepProcess(config_path, cwd, *args)
    if pattern is None:
        wait_for_training(cwd / "work", "tiny", timeout_s=300, since=sweep.started_at)
    else:
        sweep.wait_for(pattern, timeout_s=300)
    time.sleep(after_s)
    sent = sweep.interrupt()
    code = sweep.wait(timeout_s=60)
    took = time.monotonic() - sent
    assert code == 130, sweep.output()[-3000:]
    assert took < EXIT_WITHIN_S, (took, sweep.output()[-3000:])
    assert "Traceback" not in sweep.output(), sweep.output()[-3000:]
    time.sleep(1.0)
    assert sweep.ray_processes_left() == []
    return sweep, took


def test_ctrl_c_in_embedding_then_in_training_then_resume_succeeds(tmp_path):
    work = tmp_path / "work"
    config_path = write_config(tmp_path, tiny_study(work, train=LONG_TRAINING))

    embedding, _ = interrupt_at(config_path, tmp_path, r"embedding \d+ texts on \d+ actors", after_s=2.0)
    assert "sweep interrupted" in embedding.output().splitlines()[-1]
    assert statuses(work) == {"parent": ["KILLED"], "trials": []}

    training, _ = interrupt_at(config_path, tmp_path, None, 0.5, "--resume")
    assert "sweep interrupted" in training.output().splitlines()[-1]
    assert statuses(work) == {"parent": ["KILLED"], "trials": ["KILLED"]}  # the same parent run, reopened

    again = SweepProcess(config_path, tmp_path, "--resume")
    assert again.wait(timeout_s=600) == 0, again.output()[-3000:]
    assert "sweep finished: 1 trials (0 failed)" in again.output()
    assert statuses(work) == {"parent": ["FINISHED"], "trials": ["FINISHED"]}  # the trial's run, re-attached
    assert again.ray_processes_left() == []
