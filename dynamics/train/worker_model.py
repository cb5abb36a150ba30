"""The model a DeepSpeed rank trains: loaded the way its ZeRO stage needs, on the right device, seeded.

Under ZeRO-3 the DeepSpeed config must be live before `from_pretrained`, so that transformers builds the model
inside `deepspeed.zero.Init` and no rank ever holds the full weights (33B in bf16 is 66 GB per rank otherwise).
transformers keeps only a weak reference to that config (`HfDeepSpeedConfig`): the `LoadedModel` holds the
strong one for the model's lifetime, or ZeRO-3 silently stops applying to anything built later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dynamics.config import TrainConfig
from dynamics.models import load_model


@dataclass
class LoadedModel:
    """A model ready for `deepspeed.initialize`, with what must outlive it."""

    model: torch.nn.Module
    num_parameters: int  # of the whole model, not this rank's partition
    zero3_config: Any | None  # the HfDeepSpeedConfig that keeps ZeRO-3 on for this model (strong reference)


def seed_torch(seed: int, rank: int = 0) -> None:
    """Seed torch's generators (CPU and every CUDA device). Rank 0 of a trial uses `seed` itself; other ranks
    an offset one, so dropout differs between ranks as it would on one large batch."""
    torch.manual_seed(seed + 1_000_003 * rank)


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters of the whole model; a ZeRO-3 partitioned parameter counts its full size (`ds_numel`)."""
    return sum(getattr(parameter, "ds_numel", parameter.numel()) for parameter in model.parameters())


def model_hidden_size(source: str) -> int | None:
    """The width of the residual stream, from the model's config alone (no weights read)."""
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(source), "hidden_size", None)


def load_for_training(source: str, tokenizer, config: TrainConfig, ds_config: dict[str, Any], seed: int) -> LoadedModel:
    """Load `source` for this rank: under ZeRO-3 partitioned at load, new embedding rows drawn from `seed`
    (the same on every rank, so the ranks agree on them), activation checkpointing as configured."""
    from dynamics.train.deepspeed_setup import apply_memory_settings

    zero3_config = None
    if config.zero_stage == 3:
        import deepspeed
        import torch.distributed as dist
        from transformers.integrations import HfDeepSpeedConfig

        if dist.is_initialized():
            # zero.Init partitions over DeepSpeed's own communicator: let it adopt the group Ray Train made, or
            # it checks the batch geometry against a world of one and partitions nothing.
            deepspeed.init_distributed(dist_backend=dist.get_backend(), auto_mpi_discovery=False)
        zero3_config = HfDeepSpeedConfig(ds_config)  # read by from_pretrained through a weak reference
    seed_torch(seed)  # resized embedding rows (and any freshly initialised weights) follow the trial seed
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
    model = load_model(source, tokenizer, dtype)
    apply_memory_settings(model, config)
    return LoadedModel(model, count_parameters(model), zero3_config)
