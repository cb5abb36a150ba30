"""Every item trains the planned number of times, in the planned order, whatever the geometry.

Observed from outside the loop: a global forward pre-hook on every embedding layer records the token rows each
DeepSpeed rank actually fed its model in training mode; the test maps them back to item ids and rebuilds the
global sequence. Cases: 1 and 2 workers × accumulation 1 and 4 × a volume that is not a multiple of the global
batch and one smaller than a global batch × 2 epochs that repeat or reshuffle.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import torch
from mlflow.tracking import MlflowClient
from ray import cloudpickle
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from dynamics.config import TrainConfig
from dynamics.models import load_tokenizer
from dynamics.text.templates import TEMPLATES
from dynamics.tracking import TrackedRun, start_sweep_run
from dynamics.train.loop import WorkerInputs, encode_split, train_loop_per_worker, train_worker
from dynamics.train.sharding import StepPlan

# Ray workers cannot import a test module: its worker functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

GLOBAL_BATCH = 16
VOLUMES = (37, 5)  # 2 full steps and a short one of 5; one short step of 5 items
ACCUMULATIONS = (1, 4)
ORDERS = ("repeat", "reshuffle")
SEED = 11


def _conversation(rng: random.Random, index: int) -> list[dict[str, str]]:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    # The index makes every item's tokens unique, so a token row names exactly one item.
    return [{"role": "user", "content": f"Add #{index}.\n{a} + {b}"}, {"role": "assistant", "content": str(a + b)}]


def _tables(num_items: int) -> tuple[pa.Table, pa.Table]:
    rng = random.Random(num_items)
    ids = [f"item-{i:03d}" for i in range(num_items)]
    rng.shuffle(ids)  # a scrambled arrangement: training must follow it, not the ids' natural order
    arranged = pa.table({"id": ids, "messages": [_conversation(rng, i) for i in range(num_items)]})
    test = pa.table(
        {
            "id": ["t0", "t1"],
            "task": ["add", "add"],
            "category": ["arithmetic", "arithmetic"],
            "messages": [_conversation(rng, 1000 + i) for i in range(2)],
        }
    )
    return arranged, test


def _train_config(num_workers: int, accumulation: int, order: str) -> TrainConfig:
    return TrainConfig(
        global_batch_size=GLOBAL_BATCH,
        micro_batch_size=GLOBAL_BATCH // num_workers // accumulation,
        epochs=2,
        epoch_order=order,
        eval_every=1000,
        zero_stage=2,
        lr=1e-3,
        max_length=64,
    )


def _cases(num_workers: int) -> list[dict[str, Any]]:
    return [
        {"volume": volume, "accumulation": accumulation, "order": order}
        for volume, accumulation, order in itertools.product(VOLUMES, ACCUMULATIONS, ORDERS)
    ]


def _recording_loop(loop_config: dict[str, Any]) -> None:
    """Runs the real `train_worker` once per case, recording each training forward's token rows."""
    import ray.train

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    forwards: list[list[list[int]]] = []

    def record(module: torch.nn.Module, args: tuple) -> None:
        if isinstance(module, torch.nn.Embedding) and module.training and args:
            forwards.append(args[0].tolist())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        for index, case in enumerate(loop_config["cases"]):
            forwards.clear()
            arranged, test = _tables(case["volume"])
            train = _train_config(world_size, case["accumulation"], case["order"])
            inputs = WorkerInputs(loop_config["model"], train, arranged, test, seed=SEED)
            train_worker(inputs, rank, world_size)
            out = Path(loop_config["out"]) / f"case{index}-rank{rank}.json"
            out.write_text(json.dumps(forwards))
    finally:
        handle.remove()
    ray.train.report({"cases": len(loop_config["cases"])})


def _item_of_row(arranged: pa.Table, tokenizer, train: TrainConfig) -> dict[tuple[int, ...], int]:
    """Token row (padding stripped) → arrangement position, from the same encoding the loop uses."""
    split = encode_split(arranged, tokenizer, TEMPLATES.get(train.template), train)
    assert split.kept_positions == list(range(arranged.num_rows))
    return {tuple(example.input_ids): position for position, example in enumerate(split.examples)}


def _strip(row: list[int], pad_id: int) -> tuple[int, ...]:
    while row and row[-1] == pad_id:
        row = row[:-1]
    return tuple(row)


@pytest.mark.parametrize("num_workers", [1, 2])
def test_every_item_trains_as_planned(ray_cluster, tiny_model, tmp_path, num_workers):
    cases = _cases(num_workers)
    trainer = TorchTrainer(
        _recording_loop,
        train_loop_config={"cases": cases, "model": tiny_model, "out": str(tmp_path)},
        scaling_config=ScalingConfig(num_workers=num_workers, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name=f"order-matrix-{num_workers}", storage_path=str(tmp_path / "ray")),
    )
    trainer.fit()

    tokenizer = load_tokenizer(tiny_model.tokenizer, "study_b")
    pad_id = tokenizer.pad_token_id
    for index, case in enumerate(cases):
        arranged, _ = _tables(case["volume"])
        train = _train_config(num_workers, case["accumulation"], case["order"])
        item_of = _item_of_row(arranged, tokenizer, train)
        per_rank = [json.loads((tmp_path / f"case{index}-rank{rank}.json").read_text()) for rank in range(num_workers)]
        # Every rank ran the same number of training forwards: the accumulation steps of every step.
        plan = StepPlan.of(train, case["volume"], num_workers, 0, SEED)
        assert {len(forwards) for forwards in per_rank} == {plan.total_steps * case["accumulation"]}, case
        sequence: list[int] = []
        for step in range(plan.total_steps):
            for forwards in per_rank:
                for batch in forwards[step * case["accumulation"] : (step + 1) * case["accumulation"]]:
                    for row in batch:
                        stripped = _strip(row, pad_id)
                        if stripped:  # else an empty micro-batch's placeholder: one pad token
                            sequence.append(item_of[stripped])
        volume = case["volume"]
        assert len(sequence) == 2 * volume, case  # every item twice: two epochs, no tail dropped
        first, second = sequence[:volume], sequence[volume:]
        assert first == list(range(volume)), case  # epoch 0 is the arrangement itself
        if case["order"] == "repeat":
            assert second == first, case
        else:
            assert sorted(second) == first and second != first, case  # a reshuffle of the same items
        assert sequence == plan.planned_order(), case


def _sweep_run(tracking_uri: str, name: str) -> TrackedRun:
    return start_sweep_run(tracking_uri, "order-test", name, {})


def test_short_last_step_is_logged_and_recorded(ray_cluster, tiny_model, tracking_uri, tmp_path):
    # 37 items, global batch 16, 2 workers × micro 4 × accumulation 2: steps of 16, 16 and a short one of 5.
    train = TrainConfig(global_batch_size=16, micro_batch_size=4, eval_every=2, zero_stage=2, lr=1e-3, max_length=64)
    run = _sweep_run(tracking_uri, "short-step")
    arranged, test = _tables(37)
    inputs = WorkerInputs(tiny_model, train, arranged, test, run=run, seed=SEED)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"inputs": inputs},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="short-step", storage_path=str(tmp_path / "ray")),
    )
    trainer.fit()

    client = MlflowClient(tracking_uri)
    consumed = json.loads(Path(client.download_artifacts(run.run_id, "consumed.json", str(tmp_path))).read_text())
    ids = arranged.column("id").to_pylist()
    rebuilt = [item for step in zip(*consumed["ranks"], strict=True) for rank in step for item in rank["ids"]]
    assert rebuilt == ids
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics["total_steps"] == 3 and metrics["dropped_tail_items"] == 0
    assert [m.step for m in client.get_metric_history(run.run_id, "train_loss")] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run.run_id, "test_loss/macro")] == [0, 2, 3]


def test_non_finite_loss_fails_the_trial_with_the_step_and_items(ray_cluster, tiny_model, tracking_uri, tmp_path):
    # An absurd learning rate blows the weights up after the first step; the next loss is not finite.
    train = TrainConfig(global_batch_size=8, micro_batch_size=8, eval_every=100, lr=1e30, schedule="constant")
    run = _sweep_run(tracking_uri, "nan")
    arranged, test = _tables(32)
    inputs = WorkerInputs(tiny_model, train, arranged, test, run=run)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"inputs": inputs},
        scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="nan", storage_path=str(tmp_path / "ray")),
    )
    with pytest.raises(Exception, match=r"non-finite training loss at step \d+; rank 0 items \['item-"):
        trainer.fit()
