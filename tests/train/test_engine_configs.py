"""The DeepSpeed configs we write, initialised by real DeepSpeed (dynamics.train.deepspeed_setup).

Run: `python -m pytest -q tests/train/test_engine_configs.py` (one subprocess, ~30 s on 2 CPUs)
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dynamics.config import TrainConfig
from dynamics.train.deepspeed_setup import deepspeed_config
from dynamics.train.sharding import StepPlan

PROBE = Path(__file__).with_name("engine_probe.py")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def engines() -> list[dict]:
    done = subprocess.run(
        [sys.executable, str(PROBE), str(_free_port())], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_every_stage_precision_and_accumulation_initialises_and_steps(engines: list[dict]) -> None:
    assert len(engines) == 14  # 4 stages × 2 precisions × 2 accumulations, less bf16 under ZeRO-0
    assert all(engine["global_steps"] == 1 for engine in engines)  # accumulation ended in one optimizer step


def test_bf16_with_accumulation_accumulates_in_fp32(engines: list[dict]) -> None:
    for engine in engines:
        expected = "torch.float32" if engine["precision"] == "fp32" or engine["accumulation"] > 1 else "torch.bfloat16"
        assert engine["grad_accum_dtype"] == expected, engine


def test_zero_stages_use_deepspeeds_partitioned_optimizers(engines: list[dict]) -> None:
    chosen = {(e["stage"], e["precision"], e["accumulation"]): e["optimizer"] for e in engines}
    assert chosen[(0, "fp32", 2)] == "AdamW"  # no ZeRO: our torch optimizer as is
    assert chosen[(2, "bf16", 2)] == "DeepSpeedZeroOptimizer"
    assert chosen[(3, "fp32", 1)] == "DeepSpeedZeroOptimizer_Stage3"
    assert chosen[(1, "bf16", 2)] == "BF16_Optimizer"  # DeepSpeed's fp32-accumulating path for ZeRO-1


@pytest.mark.parametrize("accumulation", [1, 2])
def test_fp32_update_is_the_same_under_every_stage(engines: list[dict], accumulation: int) -> None:
    losses = [e["loss_after"] for e in engines if e["precision"] == "fp32" and e["accumulation"] == accumulation]
    assert len(losses) == 4
    assert max(losses) - min(losses) < 1e-5, losses


def test_zero3_sizes_follow_the_model_width() -> None:
    train = TrainConfig(zero_stage=3, precision="bf16", offload_params=True, offload_optimizer=True)
    plan = StepPlan(64, train.global_batch_size, train.micro_batch_size, 1, 0)
    zero = deepspeed_config(train, plan, hidden_size=4096, has_cuda=True)["zero_optimization"]
    assert zero["reduce_bucket_size"] == 4096 * 4096
    assert zero["stage3_prefetch_bucket_size"] == int(0.9 * 4096 * 4096)
    assert zero["stage3_param_persistence_threshold"] == 10 * 4096
    assert zero["offload_param"] == zero["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    assert zero["overlap_comm"] is True
    on_cpu = deepspeed_config(train, plan, hidden_size=None, has_cuda=False)["zero_optimization"]
    assert on_cpu["offload_param"]["pin_memory"] is False and on_cpu["overlap_comm"] is False


def test_bf16_under_zero0_is_refused() -> None:
    with pytest.raises(ValueError, match="bf16 needs zero_stage 1, 2 or 3"):
        TrainConfig(zero_stage=0, precision="bf16")
