"""The optimizer as the studies ran it: AdamW with weight decay on weight matrices only, and its schedule.

Decay shrinks weights toward zero; applied to a norm's gain or to a bias it only distorts them (HF Trainer's
`get_decay_parameter_names` excludes both too). The rule here is structural, not by name: every parameter of a
normalisation module and every parameter with fewer than two dimensions (biases, gains) is left undecayed.
"""

from __future__ import annotations

from typing import Any

import torch

from dynamics.config import TrainConfig
from dynamics.train.deepspeed_setup import lr_lambda


def _is_norm(module: torch.nn.Module) -> bool:
    """LayerNorm, GroupNorm, LlamaRMSNorm, T5LayerNorm, …: torch's own and any module named like one."""
    norms = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm, torch.nn.RMSNorm)
    return isinstance(module, norms) or type(module).__name__.endswith(("Norm", "NormLayer"))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two torch param groups: decayed weight matrices, then undecayed norms and biases (trainable ones only)."""
    in_norm = {id(p) for module in model.modules() if _is_norm(module) for p in module.parameters(recurse=False)}
    decay, no_decay = [], []
    seen: set[int] = set()
    for parameter in model.parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))  # a tied weight is one parameter
        dimensions = getattr(parameter, "ds_shape", parameter.shape)  # a ZeRO-3 partition keeps its full shape
        (no_decay if id(parameter) in in_norm or len(dimensions) < 2 else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over `parameter_groups`; DeepSpeed's CPU Adam when optimizer states live on the CPU (ZeRO-Offload
    refuses a torch optimizer there: it steps on CPU tensors, where torch's AdamW is several times slower)."""
    groups = parameter_groups(model, config.weight_decay)
    if config.offload_optimizer:
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # builds its C++ op on first use

        return DeepSpeedCPUAdam(groups, lr=config.lr, betas=config.betas, eps=config.eps, adamw_mode=True)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The SPEC §3 schedule over `total_steps` optimizer steps; `get_last_lr()` before a step is its rate."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, total_steps))
