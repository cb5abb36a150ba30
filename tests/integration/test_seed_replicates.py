"""A real sweep whose data ignores the seed (NIV2 sample, first items of each task) over two seeds: the nearest-
first trial of seed 1 would repeat seed 0's to the bit, so it is not run and the parent run says so; the random
orders, which the seed moves, both run and train differently. Read back from MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dynamics.config import load_config
from dynamics.sweep.driver import SEED_REPEATS_ARTIFACT, run_sweep
from dynamics.tracking import TrackedRun, child_runs

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "niv2-sample").is_dir(), reason=f"no NIV2 sample at {SHARED}")
@pytest.mark.usefixtures("ray_cluster")
def test_a_trial_the_seed_cannot_change_runs_once_and_is_reported(tmp_path: Path) -> None:
    config = load_config(
        ROOT / "experiments" / "configs" / "offline.yaml",
        {
            "workdir": str(tmp_path / "work"),
            "data.source": "niv2",
            "data.path": str(SHARED / "niv2-sample"),
            "data.options": {},
            "data.sample": {"mode": "first", "per_train_task": 4, "per_test_task": 1},
            "train.eval_every": 100,
            "evaluate.in_loop": [],
            "grid.volume": ["all"],
            "grid.model": ["tiny-0.5m"],
            "grid.permutation": ["nft", "rt"],
            "grid.seed": [0, 1],
        },
    )
    result = run_sweep(config)
    assert (result.num_trials, result.failed_trials) == (3, 0)
    parent = TrackedRun(result.tracking_uri, result.parent_run_id)
    client = MlflowClient(result.tracking_uri)
    folder = client.download_artifacts(parent.run_id, SEED_REPEATS_ARTIFACT, str(tmp_path))
    nft_0, nft_1 = "n=36 model=tiny-0.5m perm=nft seed=0", "n=36 model=tiny-0.5m perm=nft seed=1"
    rt_0, rt_1 = "n=36 model=tiny-0.5m perm=rt seed=0", "n=36 model=tiny-0.5m perm=rt seed=1"
    assert json.loads(Path(folder).read_text()) == {nft_1: nft_0}
    runs = {run.info.run_name: run for run in child_runs(parent)}
    assert set(runs) == {nft_0, rt_0, rt_1}

    def losses(name: str) -> list[float]:
        history = client.get_metric_history(runs[name].info.run_id, "train_loss")
        return [point.value for point in sorted(history, key=lambda point: point.step)]

    assert losses(rt_0) != losses(rt_1)  # the seed moved the order
