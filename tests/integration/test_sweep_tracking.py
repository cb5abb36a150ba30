"""A small real sweep: Ray Tune trials of DeepSpeed workers, read back from MLflow with MlflowClient; then its
eval checkpoints scored again by `dynamics evaluate --run`, logged to the trial's run at their steps."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from dynamics.cli import main
from dynamics.config import load_config
from dynamics.evaluate.offline import OfflineEvaluation, checkpoints_of, score_checkpoint
from dynamics.sweep.driver import run_sweep
from dynamics.sweep.payload import TEST_COLUMNS
from dynamics.tracking import TrackedRun, child_runs

OFFLINE = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "offline.yaml"


@pytest.fixture(scope="module")
def tracked_sweep(ray_cluster, tmp_path_factory):
    """(config, result) of one small sweep of two trials, eval checkpoints at steps 2 and 3, run once for the
    module: its runs are read back, then its checkpoints scored again by `dynamics evaluate`."""
    from ray import tune

    work = tmp_path_factory.mktemp("tracked") / "work"
    real_fit = tune.Tuner.fit

    def fit_as_on_other_nodes(self):
        # Trials on other nodes of a cluster cannot see the driver's disk: remove what the driver wrote there.
        shutil.rmtree(work / "arrangements")
        shutil.rmtree(work / "models")
        return real_fit(self)

    config = load_config(
        OFFLINE,
        {
            "workdir": str(work),
            "data.options.per_train_task": 2,
            "data.options.per_test_task": 2,
            "grid.volume": [48],
            "grid.model": ["tiny-0.5m"],
            "grid.permutation": ["nft", "tma_min"],
            "grid.seed": [0],
            "train.eval_every": 1,
            "checkpoints.eval_every": 2,  # 3 steps: eval checkpoints at steps 2 and 3 (the last)
        },
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tune.Tuner, "fit", fit_as_on_other_nodes)
        return config, run_sweep(config)


def test_sweep_logs_parent_children_and_per_step_per_task_loss(tracked_sweep):
    config, result = tracked_sweep
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
        # where the start-up went: Ray's worker group, then each phase of the worker's own set-up
        phases = ["tokenize", "model", "engine", "resume", "evaluation"]
        assert 0 < child.data.metrics["worker_group_start_s"] < child.data.metrics["startup_s"]
        assert all(child.data.metrics[f"startup/{phase}_s"] >= 0 for phase in phases)
        factors = {key: child.data.params[key] for key in ("volume", "model", "permutation", "seed")}
        assert {key: child.data.tags[key] for key in factors} == factors  # the UI groups runs by these tags
        assert child.info.run_name == "n={volume} model={model} perm={permutation} seed={seed}".format(**factors)
        # Study B's generation metrics (offline.yaml: every 10 steps, so here at step 0 and the last step), on 22
        # of the 22 test items (its subset of 44 is more than there are), beside the loss.
        for name in ("rouge1", "rouge_l", "exact_match", "reward"):
            history = client.get_metric_history(child.info.run_id, f"test_{name}/macro")
            steps = {point.step for point in history}
            assert {0, total_steps} <= steps <= {0, 2, total_steps}, name  # step 2: `dynamics evaluate` below
            last = {point.step: point.value for point in history}[total_steps]
            per_task = [child.data.metrics[f"test_{name}/task/{task}"] for task in test_tasks]
            assert len(per_task) == 4 and math.isfinite(last)
            if name != "reward":
                assert all(0.0 <= value <= 100.0 for value in per_task), name
        assert 0.0 <= child.data.metrics["test_generation/hit_budget_share"] <= 1.0
        assert child.data.metrics["eval_s/generation"] > 0 and child.data.metrics["eval_s/loss"] > 0


def test_evaluate_scores_a_finished_trials_checkpoints_at_their_steps(tracked_sweep, tmp_path, capsys):
    config, result = tracked_sweep
    child = next(c for c in child_runs(TrackedRun(result.tracking_uri, result.parent_run_id)))
    run = TrackedRun(result.tracking_uri, child.info.run_id)
    assert list(checkpoints_of(run)) == [2, 3]
    client = MlflowClient(result.tracking_uri)

    def history(key: str) -> dict[int, float]:
        return {point.step: point.value for point in client.get_metric_history(run.run_id, key)}

    in_loop = history("test_rouge_l/macro")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    argv = ["evaluate", "--config", str(path), "--run", run.run_id, "--metrics", "loss", "rouge_l", "exact_match"]
    capsys.readouterr()
    assert main(argv) == 0
    assert f"scored 2 checkpoints of run {run.run_id} at steps [2, 3]" in capsys.readouterr().out
    # The loop scored ROUGE-L at steps 0 and 3; the checkpoints add step 2 and leave the loop's step 3 as it was.
    for key in ("test_rouge_l/macro", "test_exact_match/macro", "test_rouge_l/task/units_length"):
        assert sorted(history(key)) == [0, 2, 3], key
    assert history("test_rouge_l/macro")[3] == in_loop[3]
    loop_loss = history("test_loss/macro")
    assert sorted(loop_loss) == [0, 1, 2, 3]  # the loop's points, none written twice

    # From outside the command: each checkpoint, scored here, has the loss the loop measured at its step
    # (bf16 weights against the loop's fp32 ones: within 1%), and the two steps' losses differ by more.
    request = OfflineEvaluation(config.train, config.evaluate, ("loss",), None, tuple(_test_rows(config)))
    for step, uri in checkpoints_of(run).items():
        assert score_checkpoint(uri, request)["test_loss/macro"] == pytest.approx(loop_loss[step], rel=0.01), step
    assert abs(loop_loss[2] - loop_loss[3]) > 0.02 * loop_loss[3]


def test_evaluate_refuses_an_unknown_metric_before_any_work(tmp_path: Path, capsys, no_ray) -> None:
    argv = ["evaluate", "--config", str(OFFLINE), "--set", f"workdir={tmp_path}", "--checkpoint", str(tmp_path)]
    assert main([*argv, "--metrics", "rouge_ll"]) == 2
    assert "unknown metric 'rouge_ll'; did you mean 'rouge_l'" in capsys.readouterr().err


def _test_rows(config) -> list[dict]:
    from dynamics.data.schema import split_of
    from dynamics.data.sources import load_data

    workdir = Path(config.workdir)
    loaded = load_data(config.data, seed=0, cache_dir=workdir / "cache" / "data", report_dir=workdir)
    return split_of(loaded.table, "test").select(list(TEST_COLUMNS)).to_pylist()
