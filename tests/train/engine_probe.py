"""Initialise real DeepSpeed engines from `deepspeed_config` for every stage × precision × accumulation and
print one JSON line per case: the optimizer DeepSpeed chose, its data types, the loss after one update.

Run by tests/train/test_engine_configs.py in a subprocess (a gloo process group of one rank, torn down with
the process): `python tests/train/engine_probe.py <free port>`.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1], RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")

import deepspeed  # noqa: E402
import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from dynamics.config import TrainConfig  # noqa: E402
from dynamics.train.deepspeed_setup import deepspeed_config  # noqa: E402
from dynamics.train.optimizer import build_optimizer  # noqa: E402
from dynamics.train.sharding import StepPlan  # noqa: E402

MICRO = 2


def _case(stage: int, precision: str, accumulation: int) -> dict:
    train = TrainConfig(
        zero_stage=stage, precision=precision, global_batch_size=MICRO * accumulation, micro_batch_size=MICRO, lr=1e-2
    )
    plan = StepPlan(8, train.global_batch_size, MICRO, 1, 0)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16 if precision == "bf16" else torch.float32)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=build_optimizer(model, train),
        config=deepspeed_config(train, plan, hidden_size=16),
        dist_init_required=False,
    )
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 32, (MICRO, 6), generator=generator) for _ in range(accumulation)]
    for ids in batches:
        engine.backward(engine(input_ids=ids, labels=ids).loss)
        engine.step()
    with torch.no_grad():
        after = float(engine(input_ids=batches[0], labels=batches[0]).loss)
    model_dtype, accumulation_dtype = engine.get_data_types()
    return {
        "stage": stage,
        "precision": precision,
        "accumulation": accumulation,
        "optimizer": type(engine.optimizer).__name__,
        "model_dtype": str(model_dtype),
        "grad_accum_dtype": str(accumulation_dtype),
        "global_steps": engine.global_steps,
        "loss_after": after,
    }


if __name__ == "__main__":
    deepspeed.init_distributed("gloo")
    for stage in (0, 1, 2, 3):
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and stage == 0:
                continue  # refused by TrainConfig (tested there)
            for accumulation in (1, 2):
                print(json.dumps(_case(stage, precision, accumulation)), flush=True)
