"""Activation checkpointing as the loop applies it (dynamics.train.deepspeed_setup.apply_memory_settings).

Run: `python -m pytest -q tests/train/test_memory_settings.py`
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from dynamics.config import TrainConfig
from dynamics.train.deepspeed_setup import apply_memory_settings


def _loss_and_grads(checkpointing: bool) -> tuple[float, dict[str, torch.Tensor], LlamaForCausalLM]:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4
    )
    model = LlamaForCausalLM(config)
    apply_memory_settings(model, TrainConfig(gradient_checkpointing=checkpointing))
    model.train()
    ids = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters()}, model


def test_checkpointing_recomputes_without_changing_the_gradients() -> None:
    plain_loss, plain_grads, plain = _loss_and_grads(False)
    loss, grads, model = _loss_and_grads(True)
    assert model.is_activation_checkpointing and not plain.is_activation_checkpointing
    assert model.config.use_cache is False
    assert loss == plain_loss
    assert all(torch.allclose(grads[name], plain_grads[name], atol=1e-6) for name in plain_grads)


def test_checkpointing_keeps_far_fewer_activations() -> None:
    """Observed from outside: the tensors autograd saves in the forward pass for the backward one."""
    config = LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4
    )
    saved = {}
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        apply_memory_settings(model, TrainConfig(gradient_checkpointing=checkpointing))
        model.train()
        count = [0]

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            count[0] += 1  # noqa: B023 (used before the loop moves on)
            return tensor

        ids = torch.randint(0, 50, (1, 8))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        saved[checkpointing] = count[0]
    assert saved[True] * 4 < saved[False]  # measured: 17 against 165 for 4 layers
