"""A small real sweep: Ray Tune trials of DeepSpeed workers, read back from MLflow with MlflowClient."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlflow.tracking import MlflowClient

from dynamics.config import load_config
from dynamics.sweep.driver import run_sweep
from dynamics.tracking import TrackedRun, child_runs

OFFLINE = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "offline.yaml"


def test_sweep_logs_parent_children_and_per_step_per_task_loss(ray_cluster, tmp_path, monkeypatch):
    from ray import tune

    real_fit = tune.Tuner.fit

    def fit_as_on_other_nodes(self):
        # Trials on other nodes of a cluster cannot see the driver's disk: remove what the driver wrote there.
        shutil.rmtree(tmp_path / "work" / "arrangements")
        shutil.rmtree(tmp_path / "work" / "models")
        return real_fit(self)

    monkeypatch.setattr(tune.Tuner, "fit", fit_as_on_other_nodes)
    config = load_config(
        OFFLINE,
        {
            "workdir": str(tmp_path / "work"),
            "data.options.per_train_task": 2,
            "data.options.per_test_task": 2,
            "grid.volume": [48],
            "grid.model": ["tiny-0.5m"],
            "grid.permutation": ["nft", "tma_min"],
            "train.eval_every": 1,
        },
    )
    result = run_sweep(config)
    assert result.num_trials == 2 and result.failed_trials == 0

    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    parent_artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"test_loss_vs_step.png", "early_phase.json", "sweep_config.json", "arrangements"} <= parent_artifacts

    children = child_runs(TrackedRun(result.tracking_uri, result.parent_run_id))
    assert len(children) == 2
    assert {c.data.params["permutation"] for c in children} == {"nft", "tma_min"}
    test_tasks = {"arithmetic_add_three", "units_length", "sentiment_product", "logic_sequence_next"}
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.params["volume"] == "48" and child.data.params["model"] == "tiny-0.5m"
        assert len(child.data.tags["arrangement_hash"]) == 64
        assert child.data.params["arrangement_size"] == "48" and float(child.data.params["arrangement_w_avg"]) > 0
        if child.data.params["permutation"] == "tma_min":  # its round statistics are run params too
            # 22 test points (11 tasks × 2) claim at most 22 items a round, so 48 items take at least 3 rounds.
            assert int(child.data.params["arrangement_tma_rounds"]) >= 3
        total_steps = int(child.data.metrics["total_steps"])
        assert total_steps == 3  # 48 items / global batch 16
        expected_steps = list(range(total_steps + 1))  # step 0 (base model) then every step
        task_metrics = {k for k in child.data.metrics if k.startswith("test_loss/task/")}
        assert {f"test_loss/task/{t}" for t in test_tasks} <= task_metrics
        for key in [*sorted(task_metrics), "test_loss/macro", "test_loss/micro"]:
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert sorted(steps) == expected_steps, key
        assert child.data.metrics["startup_s"] > 0
