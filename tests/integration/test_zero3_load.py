"""Under ZeRO-3 no rank materialises the whole model: measured on the loaded model before `deepspeed.initialize`,
with 2 Ray Train workers, against the size of the weights on disk (and against ZeRO-2, which holds it all)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from ray import cloudpickle
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from safetensors import safe_open

from dynamics.config import TrainConfig
from dynamics.models import load_tokenizer
from dynamics.train.deepspeed_setup import deepspeed_config
from dynamics.train.sharding import StepPlan
from dynamics.train.worker_model import load_for_training, model_hidden_size

# Ray workers cannot import a test module: its worker functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _measure_load(loop_config: dict[str, Any]) -> None:
    import ray.train

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    train = TrainConfig(zero_stage=loop_config["stage"], global_batch_size=8, micro_batch_size=4)
    source = loop_config["model"]
    plan = StepPlan.of(train, 64, world_size, rank, 0)
    ds_config = deepspeed_config(train, plan, hidden_size=model_hidden_size(source.model), has_cuda=False)
    tokenizer = load_tokenizer(source.tokenizer, train.template)
    loaded = load_for_training(source.model, tokenizer, train, ds_config, seed=0)
    held = 0
    for parameter in loaded.model.parameters():
        partition = getattr(parameter, "ds_tensor", None)  # ZeRO-3's own shard of this parameter
        held += (parameter.data if partition is None else partition).numel() * parameter.element_size()
        held += 0 if partition is None else parameter.data.numel() * parameter.element_size()  # ought to be 0
    out = Path(loop_config["out"]) / f"stage{loop_config['stage']}-rank{rank}.json"
    out.write_text(json.dumps({"held_bytes": held}))
    ray.train.report({"held_bytes": held})


def _bytes_on_disk(folder: str) -> int:
    with safe_open(str(Path(folder) / "model.safetensors"), framework="pt") as weights:
        return sum(weights.get_tensor(name).numel() * torch.float32.itemsize for name in weights.keys())  # noqa: SIM118


@pytest.mark.parametrize("stage", [3, 2])
def test_zero3_partitions_the_model_at_load(ray_cluster, tiny_model, tmp_path, stage):
    TorchTrainer(
        _measure_load,
        train_loop_config={"stage": stage, "model": tiny_model, "out": str(tmp_path)},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name=f"zero3-load-{stage}", storage_path=str(tmp_path / "ray")),
    ).fit()
    full = _bytes_on_disk(tiny_model.model)
    held = [json.loads((tmp_path / f"stage{stage}-rank{rank}.json").read_text())["held_bytes"] for rank in (0, 1)]
    if stage == 3:
        assert all(rank_bytes < 0.6 * full for rank_bytes in held), (held, full)  # about half each, plus padding
        assert sum(held) >= full  # together the ranks hold every weight
    else:
        assert held == [full, full]  # without ZeRO-3 every rank holds the whole model
