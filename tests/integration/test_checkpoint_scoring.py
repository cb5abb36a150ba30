"""`evaluate.on_checkpoints`: a real sweep's trial trains with test loss alone in the loop; its eval checkpoints
and its base model are scored by Ray tasks (ROUGE-L, exact match, a tiny reward model; beside the training, the
default, whose own test shows scores landing before training ends), logged to its run at their steps, and the
checkpoints deleted with their tags. Read back from MLflow and the disk; the base model's scores are recomputed
here, outside the sweep."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dynamics.config import load_config
from dynamics.data.schema import split_of
from dynamics.data.sources import load_data
from dynamics.evaluate.offline import OfflineEvaluation, checkpoints_of, score_checkpoint
from dynamics.models.reward import materialise_reward_model
from dynamics.sweep.driver import run_sweep
from dynamics.sweep.payload import TEST_COLUMNS
from dynamics.tracking import TrackedRun, child_runs

OFFLINE = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "offline.yaml"
SCORED = ["rouge_l", "exact_match", "reward"]


@pytest.mark.usefixtures("ray_cluster")
def test_eval_checkpoints_are_scored_logged_at_their_steps_and_deleted(tmp_path: Path) -> None:
    work = tmp_path / "work"
    config = load_config(
        OFFLINE,
        {
            "workdir": str(work),
            "data.options.per_train_task": 2,
            "data.options.per_test_task": 2,
            "grid.volume": [48],
            "grid.model": ["tiny-0.5m"],
            "grid.permutation": ["nft"],
            "grid.seed": [0],
            "train.eval_every": 1,
            "checkpoints.eval_every": 2,  # 3 steps: eval checkpoints at steps 2 and 3 (the last)
            "evaluate.in_loop": [],
            "evaluate.on_checkpoints": {"metrics": SCORED, "delete_checkpoints": True},
        },
    )
    result = run_sweep(config)
    assert result.num_trials == 1 and result.failed_trials == 0
    (child,) = child_runs(TrackedRun(result.tracking_uri, result.parent_run_id))
    assert child.info.status == "FINISHED"
    client = MlflowClient(result.tracking_uri)

    def history(key: str) -> dict[int, float]:
        return {point.step: point.value for point in client.get_metric_history(child.info.run_id, key)}

    for name in SCORED:  # the base model at step 0, then each checkpoint at its step
        values = history(f"test_{name}/macro")
        assert sorted(values) == [0, 2, 3] and all(math.isfinite(value) for value in values.values()), name
    assert sorted(history("test_loss/macro")) == [0, 1, 2, 3]  # the loop's loss, no point written twice
    assert "eval_s/generation" not in child.data.metrics  # nothing was generated inside the loop
    assert sorted(history("scoring_s/generation")) == [0, 2, 3]  # what scoring each one cost, apart

    # Deleted once scored: no folder left, no tag pointing at one, and the steps recorded.
    tags = child.data.tags
    assert tags["eval_checkpoints_deleted"] == "2,3"
    assert checkpoints_of(TrackedRun(result.tracking_uri, child.info.run_id)) == {}
    assert list(work.rglob("eval/step-*")) == []

    # Step 0 recomputed here on the base model: greedy decoding of the same model gives the same scores.
    loaded = load_data(config.data, seed=0, cache_dir=work / "cache" / "data", report_dir=work)
    test_rows = tuple(split_of(loaded.table, "test").select(list(TEST_COLUMNS)).to_pylist())
    reward_model = materialise_reward_model(config.evaluate.reward_model, work)
    request = OfflineEvaluation(config.train, config.evaluate, tuple(SCORED), None, test_rows, reward_model)
    base = score_checkpoint(child.data.params["model_source"], request)
    for name in SCORED:
        assert base[f"test_{name}/macro"] == pytest.approx(history(f"test_{name}/macro")[0], abs=1e-9), name
