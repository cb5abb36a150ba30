"""`evaluate.on_checkpoints` while a trial trains: the scorer watches the run's eval-checkpoint tags (rank 0 sets
them as folders are published), scores each new checkpoint in a real Ray task and logs its metrics at its step
before training ends; `finish()` scores the rest. Here the "training" is this test, which publishes checkpoint
folders and tags them one at a time; everything is observed in the MLflow store and on the disk."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient

from dynamics.config import EvaluateConfig, TrainConfig
from dynamics.data.builtin import generate_builtin
from dynamics.evaluate.offline import OfflineEvaluation, checkpoints_of
from dynamics.tracking import TrackedRun, start_sweep_run, start_trial_run
from dynamics.train.checkpoint_scoring import DELETED_TAG, CheckpointScorer

METRIC = "test_exact_match/macro"


def _test_rows() -> tuple[dict, ...]:
    table = generate_builtin(1, 1, seed=0)
    test = table.filter(pa.array([split == "test" for split in table.column("split").to_pylist()]))
    return tuple(test.select(["id", "task", "category", "messages", "references"]).to_pylist())


def _request() -> OfflineEvaluation:
    train = TrainConfig(template="study_b", global_batch_size=8, micro_batch_size=8, max_length=128)
    evaluate = EvaluateConfig(max_new_tokens=4, batch_size=16)
    return OfflineEvaluation(train, evaluate, ("exact_match", "rouge_l"), None, _test_rows())


def _publish(run: TrackedRun, model_folder: str, root: Path, step: int) -> Path:
    """What rank 0 does at an eval step: the folder first, then its tag."""
    folder = root / f"step-{step:08d}"
    shutil.copytree(model_folder, folder)
    run.set_tags({f"eval_checkpoint/step-{step:08d}": str(folder)})
    return folder


def _steps(client: MlflowClient, run: TrackedRun, key: str) -> list[int]:
    return sorted(point.step for point in client.get_metric_history(run.run_id, key))


@pytest.mark.usefixtures("ray_cluster")
def test_checkpoints_are_scored_while_training_goes_on_then_the_rest_at_the_end(
    tracking_uri: str, tiny_model, tmp_path: Path
) -> None:
    run = start_trial_run(start_sweep_run(tracking_uri, "scoring-beside", "sweep", {}), "trial", {})
    client = MlflowClient(tracking_uri)
    root = tmp_path / "eval"
    scorer = CheckpointScorer(run, _request(), {"num_cpus": 1}, delete_checkpoints=True, poll_s=0.2).start()
    first = _publish(run, tiny_model.model, root, 2)
    deadline = time.monotonic() + 180
    while _steps(client, run, METRIC) != [2]:  # scored and logged with finish() not yet called
        assert time.monotonic() < deadline, "step 2 was not scored while 'training' went on"
        time.sleep(0.2)
    assert not first.exists()  # deleted once scored, its tag with it
    assert f"eval_checkpoint/step-{2:08d}" not in run.get().data.tags

    last = _publish(run, tiny_model.model, root, 4)  # written at the last step: finish() scores it
    assert scorer.finish() == [2, 4]
    assert _steps(client, run, METRIC) == [2, 4] and _steps(client, run, "test_rouge_l/macro") == [2, 4]
    assert _steps(client, run, "scoring_s/generation") == [2, 4]
    assert not last.exists() and checkpoints_of(run) == {}
    assert run.get().data.tags[DELETED_TAG] == "2,4"

    # A resumed trial's scorer: step 4 scored before (its folder written again by the repeated step) is deleted,
    # not scored twice; a new step is.
    again = _publish(run, tiny_model.model, root, 4)
    _publish(run, tiny_model.model, root, 6)
    assert CheckpointScorer(run, _request(), {"num_cpus": 1}, delete_checkpoints=True).finish() == [6]
    assert _steps(client, run, METRIC) == [2, 4, 6]
    assert not again.exists() and run.get().data.tags[DELETED_TAG] == "2,4,6"


@pytest.mark.usefixtures("ray_cluster")
def test_a_checkpoint_that_cannot_be_scored_fails_finish_with_its_folder(tracking_uri: str, tmp_path: Path) -> None:
    run = start_trial_run(start_sweep_run(tracking_uri, "scoring-beside", "sweep", {}), "trial", {})
    missing = tmp_path / "eval" / "step-00000002"
    run.set_tags({"eval_checkpoint/step-00000002": str(missing)})
    scorer = CheckpointScorer(run, _request(), {"num_cpus": 1}, poll_s=0.2).start()
    with pytest.raises(Exception, match="step-00000002"):
        scorer.finish()
    assert _steps(MlflowClient(tracking_uri), run, METRIC) == []  # nothing logged for it
