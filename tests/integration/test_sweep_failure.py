"""A sweep whose every trial fails: its runs end FAILED with the error, and the CLI says so in one line."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from dynamics.cli import main
from dynamics.tracking import TrackedRun, child_runs, default_tracking_uri

OFFLINE = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "offline.yaml"


def test_all_trials_failing_ends_the_sweep_failed_with_one_line(ray_cluster, tmp_path, capsys):
    work = tmp_path / "work"
    overrides = {
        "workdir": str(work),
        "data.options.per_train_task": 1,
        "data.options.per_test_task": 1,
        "grid.volume": "[16]",
        "grid.model": "[tiny-0.5m]",
        "grid.permutation": "[nft]",
        "grid.seed": "[0]",
        "train.lr": "1e30",  # the first update blows the weights up: the next loss (test or training) is not finite
        "checkpoints.max_failures": 0,  # a non-finite loss comes back on every retry
    }
    argv = ["sweep", "--config", str(OFFLINE)]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 1

    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err
    # One progress view, not Tune's tables: the trial's start and failure, then the counts
    name = "n=16 model=tiny-0.5m perm=nft seed=0"
    events = [line for line in captured.out.splitlines() if line.startswith(("started ", "FAILED ", "finished "))]
    assert events[0] == f"started {name}" and events[1].startswith(f"FAILED {name} after ") and len(events) == 2
    status = [line for line in captured.out.splitlines() if " trials: " in line]
    assert "trials: 0 done, 0 running, 1 failed, 0 waiting of 1" in status[-1]
    assert "Trial status" not in captured.out + err and "Trial name" not in captured.out + err
    ours = [line for line in err.splitlines() if line.startswith("sweep failed:")]
    assert len(ours) == 1
    assert "all 1 trials failed" in ours[0] and "non-finite" in ours[0] and "FAILED" in ours[0]
    (trial_line,) = [line for line in err.splitlines() if line.startswith("trial failed:")]
    assert trial_line.startswith("trial failed: n=16 model=tiny-0.5m perm=nft seed=0: ")
    assert "non-finite" in trial_line
    error_file = Path(trial_line.rsplit("(full error: ", 1)[1].rstrip(")"))
    assert error_file.is_file() and "non-finite" in error_file.read_text()

    client = MlflowClient(default_tracking_uri(work))
    parent = client.search_runs(
        [client.get_experiment_by_name("dynamics-offline").experiment_id], "tags.`mlflow.parentRunId` IS NULL"
    )
    assert len(parent) == 1 and parent[0].info.status == "FAILED"
    assert "1 of 1 trials failed" in parent[0].data.tags["error"]
    (trial,) = child_runs(TrackedRun(default_tracking_uri(work), parent[0].info.run_id))
    assert trial.info.status == "FAILED" and "non-finite" in trial.data.tags["error"]
    # Where it got to: the last step it logged a training loss for, and no checkpoint (it never reached one).
    assert int(trial.data.tags["failed_after_step"]) <= 1
    assert trial.data.tags["last_checkpoint"] == "none"
