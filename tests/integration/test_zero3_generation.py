"""Generation metrics under ZeRO-3 with 2 workers: every rank decodes its shard in paired forward passes
(`synced_gpus`), and the replies, hence the scores, are those of the same trial under ZeRO-2."""

from __future__ import annotations

import random
import sys
from typing import Any

import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient
from ray import cloudpickle
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from dynamics.config import EvaluateConfig, TrainConfig
from dynamics.tracking import start_sweep_run
from dynamics.train.loop import WorkerInputs, train_loop_per_worker

cloudpickle.register_pickle_by_value(sys.modules[__name__])

STAGES = (2, 3)  # ZeRO-3 last: its HfDeepSpeedConfig must not outlive its own model into another stage's load
KEYS = ("test_rouge_l/macro", "test_exact_match/macro", "test_ability/choose", "test_generation/reply_tokens")


def _tables() -> tuple[pa.Table, pa.Table]:
    rng = random.Random(3)
    rows = []
    for _ in range(40):
        a, b = rng.randint(0, 9), rng.randint(0, 99)
        rows.append(
            [
                {"role": "user", "content": f"{a}+{b}=" + "?" * rng.randint(0, 12)},
                {"role": "assistant", "content": str(a + b)},
            ]
        )
    arranged = pa.table({"id": [f"i{n}" for n in range(40)], "messages": rows})
    # Single-choice items whose replies name no letter fall back to the option letters' logits at the first reply
    # position: per item a 0 or a 1 that any difference in the decoded logits would change.
    options = "\nA. one\nB. two\nC. three\nD. four"
    choices = [
        [{"role": "user", "content": f"Pick {'xyzw' * k}:{options}"}, {"role": "assistant", "content": "ABCD"[k % 4]}]
        for k in range(9)
    ]
    test_rows = rows[:4] + choices
    test = pa.table(
        {
            "id": [f"t{n}" for n in range(len(test_rows))],  # 13 prompts of different lengths over 2 ranks
            "task": ["add"] * 4 + ["choose"] * 9,
            "category": ["math"] * 4 + ["choice"] * 9,
            "messages": test_rows,
            "references": [[row[1]["content"]] for row in test_rows],
        }
    )
    return arranged, test


def _each_stage(loop_config: dict[str, Any]) -> None:
    arranged, test = _tables()
    evaluate = EvaluateConfig(
        in_loop=[{"metrics": ["rouge_l", "exact_match", "ability"], "every": 2}], max_new_tokens=8, batch_size=2
    )
    for stage, run in zip(STAGES, loop_config["runs"], strict=True):
        train = TrainConfig(
            global_batch_size=8, micro_batch_size=2, zero_stage=stage, lr=3e-3, eval_every=2, max_length=32
        )
        inputs = WorkerInputs(loop_config["model"], train, arranged, test, run=run, seed=5, evaluate=evaluate)
        train_loop_per_worker({"inputs": inputs})


@pytest.mark.usefixtures("ray_cluster")
def test_zero3_generation_matches_zero2(tiny_model, tmp_path) -> None:
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = [start_sweep_run(tracking_uri, "zero-generation", f"zero{stage}", {}) for stage in STAGES]
    TorchTrainer(
        _each_stage,
        train_loop_config={"model": tiny_model, "runs": runs},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="zero-generation", storage_path=str(tmp_path / "ray")),
    ).fit()
    client = MlflowClient(tracking_uri)
    curves = [
        {
            key: [(p.step, p.value) for p in sorted(client.get_metric_history(run.run_id, key), key=lambda p: p.step)]
            for key in KEYS
        }
        for run in runs
    ]
    for key in KEYS:
        assert [step for step, _ in curves[1][key]] == [0, 2, 4, 5], key  # 40 items / 8: 5 steps
        zero3, zero2 = [value for _, value in curves[1][key]], [value for _, value in curves[0][key]]
        assert zero3 == pytest.approx(zero2, abs=1e-6), key
    chosen = [value for _, value in curves[1]["test_ability/choose"]]
    assert any(0.0 < value < 100.0 for value in chosen), chosen  # the letters' logits decide item by item
