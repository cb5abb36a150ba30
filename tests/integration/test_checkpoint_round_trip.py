"""Save → load into a fresh engine → save gives the same DeepSpeed state, for ZeRO 0, 2 and 3 (2 workers, CPU).

Each stage trains two steps, saves a resume checkpoint, builds a second engine from the untrained weights, loads
the checkpoint into it and saves again. The two folders are compared file by file on the driver: every tensor,
every number and every name in every file (model, ZeRO partitions, scheduler, RNG, data record, manifests).
"""

from __future__ import annotations

import gc
import json
import random
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import torch
import torch.distributed as dist
from ray import cloudpickle
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from dynamics.config import TrainConfig
from dynamics.train import checkpoints, eval_checkpoints
from dynamics.train.loop import WorkerInputs, prepare_worker
from dynamics.train.steps import train_step

# Ray workers cannot import a test module: its worker functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

STAGES = (0, 2, 3)  # ZeRO-3 last: its HfDeepSpeedConfig must not outlive its own model into another stage's load
STEPS = 2


def _inputs(model, stage: int) -> WorkerInputs:
    rng = random.Random(2)
    rows = []
    for _ in range(32):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append([{"role": "user", "content": f"{a}+{b}="}, {"role": "assistant", "content": str(a + b)}])
    arranged = pa.table({"id": [f"i{n}" for n in range(32)], "messages": rows})
    test = pa.table({"id": ["t0"], "task": ["add"], "category": ["math"], "messages": rows[:1]})
    train = TrainConfig(global_batch_size=8, micro_batch_size=2, zero_stage=stage, lr=3e-3, max_length=32)
    return WorkerInputs(model, train, arranged, test, seed=5)


def _save(engine, root: Path, rank: int, world_size: int, consumed: list[list[int]]) -> None:
    folder = checkpoints.local_folder(STEPS, rank)
    checkpoints.save(engine, folder, STEPS, rank, world_size, consumed, run_id="run")
    checkpoints.FolderStore(root).publish(folder, checkpoints.folder_name(STEPS), {})
    dist.barrier()


def _round_trips(loop_config: dict[str, Any]) -> None:
    import ray.train

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    out = Path(loop_config["out"])
    for stage in STAGES:
        inputs = _inputs(loop_config["model"], stage)
        trained = prepare_worker(inputs, rank, world_size)
        consumed = []
        for step in range(STEPS):
            outcome = train_step(
                trained.engine, trained.plan, step, trained.train.examples, trained.tokenizer.pad_token_id, world_size
            )
            consumed.append(outcome.positions)
        _save(trained.engine, out / f"zero{stage}-saved", rank, world_size, consumed)
        eval_checkpoints.save(trained.engine, trained.tokenizer, STEPS, str(out / f"zero{stage}-eval"))
        del trained, outcome
        gc.collect()
        fresh = prepare_worker(inputs, rank, world_size)
        state = checkpoints.load(
            fresh.engine, out / f"zero{stage}-saved" / checkpoints.folder_name(STEPS), rank, world_size
        )
        _save(fresh.engine, out / f"zero{stage}-again", rank, world_size, state.consumed)
        del fresh
        gc.collect()
    ray.train.report({"stages": len(STAGES)})


def _differences(first: Any, second: Any, where: str) -> list[str]:
    """Every place two loaded checkpoint objects differ (tensors by value, dtype and shape)."""
    if isinstance(first, torch.Tensor) or isinstance(second, torch.Tensor):
        same = (
            isinstance(first, torch.Tensor)
            and isinstance(second, torch.Tensor)
            and first.dtype == second.dtype
            and torch.equal(first, second)
        )
        return [] if same else [where]
    if isinstance(first, dict) and isinstance(second, dict):
        if first.keys() != second.keys():
            return [f"{where}: keys {sorted(map(str, first))} vs {sorted(map(str, second))}"]
        return [d for key in first for d in _differences(first[key], second[key], f"{where}.{key}")]
    if isinstance(first, list | tuple) and isinstance(second, list | tuple):
        if len(first) != len(second):
            return [f"{where}: lengths {len(first)} vs {len(second)}"]
        return [
            d for i, (a, b) in enumerate(zip(first, second, strict=True)) for d in _differences(a, b, f"{where}[{i}]")
        ]
    if type(first) is type(second) and hasattr(first, "__dict__") and type(first).__eq__ is object.__eq__:
        return _differences(vars(first), vars(second), where)  # e.g. DeepSpeed's loss scaler: compared by state
    return [] if first == second else [f"{where}: {first!r} vs {second!r}"]


@pytest.fixture(scope="module")
def saved(ray_cluster, tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("round-trip")
    TorchTrainer(
        _round_trips,
        train_loop_config={"model": tiny_model, "out": str(out)},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="round-trip", storage_path=str(out / "ray")),
    ).fit()
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_save_load_save_gives_the_same_state(saved, stage):
    first = saved / f"zero{stage}-saved" / checkpoints.folder_name(STEPS)
    second = saved / f"zero{stage}-again" / checkpoints.folder_name(STEPS)
    names = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(second)) for p in second.rglob("*") if p.is_file())
    checkpoints.check(first, world_size=2)
    checkpoints.check(second, world_size=2)
    tensors = 0
    for name in names:
        if name.endswith(".pt"):
            a = torch.load(first / name, weights_only=False)
            b = torch.load(second / name, weights_only=False)
            assert _differences(a, b, name) == []
            tensors += sum(1 for _ in _tensors(a))
        elif name.endswith(".json"):
            assert json.loads((first / name).read_text()) == json.loads((second / name).read_text()), name
        else:
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # What was compared: the model, the optimizer's moments and fp32 master partitions, on both ranks.
    partitions = [name for name in names if "optim_states" in name]
    assert len(partitions) == (0 if stage == 0 else 2), names
    assert tensors > 20, tensors


def _tensors(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


def test_the_saved_state_is_the_trained_state_not_the_initial_one(saved, tiny_model):
    """The round trip would also hold if load did nothing and save wrote initial weights twice: it does not."""
    from dynamics.models import load_model, load_tokenizer, on_this_node

    source = on_this_node(tiny_model)
    initial = load_model(source.model, load_tokenizer(source.tokenizer, "study_b"), torch.float32).state_dict()
    folder = saved / "zero0-again" / checkpoints.folder_name(STEPS)
    module = torch.load(next(folder.rglob("mp_rank_00_model_states.pt")), weights_only=False)["module"]
    changed = [key for key, value in module.items() if key in initial and not torch.equal(value, initial[key])]
    assert len(changed) > len(module) // 2


def test_eval_checkpoints_of_every_stage_hold_the_same_model(saved):
    """ZeRO-3 gathers its partitions onto rank 0: the same weights as the unpartitioned stages, to bf16 rounding
    of fp32 values that agree to ~1e-6 after two steps."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    states = {
        stage: load_file(str(saved / f"zero{stage}-eval" / checkpoints.folder_name(STEPS) / "model.safetensors"))
        for stage in STAGES
    }
    for stage in (2, 3):
        assert states[stage].keys() == states[0].keys()
        for key, tensor in states[stage].items():
            assert tensor.dtype == torch.bfloat16
            assert torch.allclose(tensor.float(), states[0][key].float(), rtol=1e-2, atol=1e-3), (stage, key)
    AutoModelForCausalLM.from_pretrained(saved / "zero3-eval" / checkpoints.folder_name(STEPS))
