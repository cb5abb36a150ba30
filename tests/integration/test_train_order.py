"""The global training order, rebuilt from what each DeepSpeed worker consumed, equals the arrangement."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from dynamics.config import TrainConfig
from dynamics.tracking import TrackedRun, start_sweep_run
from dynamics.train.loop import WorkerInputs, train_loop_per_worker
from dynamics.train.sharding import rebuild_global_order


def _conversation(rng: random.Random) -> list[dict[str, str]]:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return [{"role": "user", "content": f"Add.\n{a} + {b}"}, {"role": "assistant", "content": str(a + b)}]


def _inputs(model, num_items: int, train: TrainConfig, run: TrackedRun) -> WorkerInputs:
    rng = random.Random(7)
    # A deliberately scrambled arrangement: positions must follow it, not the ids' natural order.
    ids = [f"item-{i:03d}" for i in range(num_items)]
    rng.shuffle(ids)
    arranged = pa.table({"id": ids, "messages": [_conversation(rng) for _ in ids]})
    test = pa.table(
        {
            "id": [f"test-{i}" for i in range(6)],
            "task": ["add", "add", "add", "sub", "sub", "sub"],
            "category": ["arithmetic"] * 6,
            "messages": [_conversation(rng) for _ in range(6)],
        }
    )
    return WorkerInputs(model=model, train=train, arranged=arranged, test=test, run=run)


def _fit(inputs: WorkerInputs, num_workers: int, storage, name: str):
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"inputs": inputs},
        scaling_config=ScalingConfig(num_workers=num_workers, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name=name, storage_path=str(storage)),
    )
    return trainer.fit()


@pytest.mark.parametrize("num_workers", [1, 2])
def test_rebuilt_global_order_equals_arrangement(ray_cluster, tiny_model, tracking_uri, tmp_path, num_workers):
    # 70 items, global batch 16 → 4 steps; the 6-item tail is dropped and reported, never trained on silently.
    train = TrainConfig(global_batch_size=16, micro_batch_size=4, eval_every=2, zero_stage=2, lr=1e-3)
    client = MlflowClient(tracking_uri)
    run = start_sweep_run(tracking_uri, "order-test", f"w{num_workers}", {"num_workers": num_workers})
    run_id = run.run_id
    inputs = _inputs(tiny_model, 70, train, run)

    _fit(inputs, num_workers, tmp_path / "ray", f"order-{num_workers}")

    consumed_path = client.download_artifacts(run_id, "consumed.json", str(tmp_path))
    with open(consumed_path, encoding="utf-8") as handle:
        consumed = json.load(handle)
    assert consumed["world_size"] == num_workers
    per_rank_positions = [[step["positions"] for step in rank] for rank in consumed["ranks"]]
    per_rank_ids = [[step["ids"] for step in rank] for rank in consumed["ranks"]]
    assert rebuild_global_order(per_rank_positions, num_workers) == list(range(64))
    rebuilt_ids = [item for step in zip(*per_rank_ids, strict=True) for rank_ids in step for item in rank_ids]
    assert rebuilt_ids == inputs.arranged.column("id").to_pylist()[:64]
    # With 2 workers each rank takes a fixed contiguous half of every global batch.
    if num_workers == 2:
        assert per_rank_positions[0][1] == list(range(16, 24))
        assert per_rank_positions[1][1] == list(range(24, 32))

    metrics = client.get_run(run_id).data.metrics
    assert metrics["dropped_tail_items"] == 6
    assert metrics["total_steps"] == 4
    steps = [m.step for m in client.get_metric_history(run_id, "test_loss/macro")]
    assert steps == [0, 2, 4]
    assert [m.step for m in client.get_metric_history(run_id, "test_loss/task/sub")] == [0, 2, 4]
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1, 2, 3, 4]


def test_non_finite_loss_fails_the_trial_with_the_step_and_items(ray_cluster, tiny_model, tracking_uri, tmp_path):
    # An absurd learning rate blows the weights up after the first step; the next loss is not finite.
    train = TrainConfig(global_batch_size=8, micro_batch_size=8, eval_every=100, lr=1e30, schedule="constant")
    run = start_sweep_run(tracking_uri, "nan-test", "nan", {})
    inputs = _inputs(tiny_model, 32, train, run)
    with pytest.raises(Exception, match=r"non-finite training loss at step \d+; rank 0 items \['item-"):
        _fit(inputs, 1, tmp_path / "ray", "nan")
