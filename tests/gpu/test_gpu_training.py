"""Training on a GPU through the real Ray Train path: one worker, bf16, ZeRO-2 and ZeRO-3 (skipped without CUDA).

The loss falls, and the loop's own throughput figures show the model trained on the GPU: tokens/s above 0 and an
MFU in (0, 1], which the loop reports only when the engine's device is a GPU whose peak it knows.
"""

from __future__ import annotations

import os
import random

import pyarrow as pa
import pytest
import torch
from mlflow.tracking import MlflowClient

from dynamics.config import BuiltinModelConfig, ModelConfig, TrainConfig
from dynamics.models import ModelSource, materialise
from dynamics.tracking import start_sweep_run
from dynamics.train.loop import WorkerInputs, train_loop_per_worker
from dynamics.train.throughput import peak_flops_per_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available())")

TINY = ModelConfig(
    builtin=BuiltinModelConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4)
)
# Workers read DS_ACCELERATOR when they import DeepSpeed; tests/conftest.py sets it to cpu for the CPU tests.
WORKER_ENV = {
    "DS_ACCELERATOR": "cuda",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    "USE_HUB_KERNELS": "0",  # as a sweep's workers run (dynamics.sweep.runtime)
}


@pytest.fixture(scope="module")
def gpu_ray():
    """A local Ray of this module's own with the node's GPUs (one a CPU test started has none to give)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        num_gpus=torch.cuda.device_count(),
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": WORKER_ENV},
        _node_ip_address="127.0.0.1",
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_gpu_model(tmp_path_factory) -> ModelSource:
    return materialise("tiny-gpu", TINY, tmp_path_factory.mktemp("models"))


def _tables() -> tuple[pa.Table, pa.Table]:
    rng = random.Random(3)
    rows = []
    for _ in range(64):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        rows.append([{"role": "user", "content": f"{a}+{b}="}, {"role": "assistant", "content": str(a + b)}])
    arranged = pa.table({"id": [f"i{n}" for n in range(64)], "messages": rows})
    test = pa.table({"id": ["t0", "t1", "t2"], "task": ["add"] * 3, "category": ["math"] * 3, "messages": rows[:3]})
    return arranged, test


def train_and_read(
    model: ModelSource, tracking_uri: str, storage: str, stage: int, use_gpu: bool
) -> dict[str, list[float]]:
    """One 1-worker bf16 trial through `TorchTrainer(train_loop_per_worker)`; its per-step curves from MLflow."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    train = TrainConfig(
        global_batch_size=8,
        micro_batch_size=2,
        zero_stage=stage,
        precision="bf16",
        lr=3e-3,
        eval_every=8,
        max_length=32,
        epochs=2,
    )
    run = start_sweep_run(tracking_uri, "gpu", f"zero{stage}", {})
    arranged, test = _tables()
    resources = {"CPU": 1.0, "GPU": 1.0} if use_gpu else {"CPU": 0.5}
    TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"inputs": WorkerInputs(model, train, arranged, test, run=run, seed=5)},
        scaling_config=ScalingConfig(num_workers=1, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(name=f"gpu-zero{stage}", storage_path=storage),
    ).fit()
    client = MlflowClient(tracking_uri)
    return {
        key: [m.value for m in sorted(client.get_metric_history(run.run_id, key), key=lambda m: m.step)]
        for key in ("train_loss", "tokens_per_s", "mfu", "peak_memory_allocated_gib")
    }


@pytest.mark.parametrize("stage", [2, 3])
def test_bf16_trial_trains_on_the_gpu(gpu_ray, tiny_gpu_model, tmp_path, stage):
    curves = train_and_read(tiny_gpu_model, f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "ray"), stage, True)
    losses = curves["train_loss"]
    assert len(losses) == 16  # 64 items × 2 epochs / 8 per step
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4  # the loss falls
    assert curves["tokens_per_s"] and curves["tokens_per_s"][-1] > 0
    name = torch.cuda.get_device_name(0)
    assert peak_flops_per_device(name, "bf16") is not None, f"{name!r} is missing from throughput._PEAK_TFLOPS"
    assert len(curves["mfu"]) == 16 and 0 < curves["mfu"][-1] <= 1  # logged only from a known GPU
    assert curves["peak_memory_allocated_gib"] and curves["peak_memory_allocated_gib"][-1] > 0  # CUDA memory used
