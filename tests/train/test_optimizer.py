"""Tests for the optimizer as the studies ran it (dynamics.train.optimizer): decay on weight matrices only.

Run: `python -m pytest -q tests/train/test_optimizer.py`
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from dynamics.config import TrainConfig
from dynamics.train.optimizer import build_optimizer, build_scheduler, parameter_groups


def _tiny_llama(tie: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        attention_bias=True,  # biases on q/k/v/o, which must not decay
        tie_word_embeddings=tie,
    )
    return LlamaForCausalLM(config)


class FakeBlock(torch.nn.Module):
    """A block with a custom norm class (named like the HF ones) and a linear layer with a bias."""

    class FakeRMSNorm(torch.nn.Module):
        def __init__(self, width: int):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(width))

    def __init__(self) -> None:
        super().__init__()
        self.norm = self.FakeRMSNorm(4)
        self.proj = torch.nn.Linear(4, 4)
        self.frozen = torch.nn.Linear(4, 4, bias=False)
        self.frozen.weight.requires_grad_(False)


def _names(model: torch.nn.Module, group: dict) -> set[str]:
    ids = {id(parameter) for parameter in group["params"]}
    return {name for name, parameter in model.named_parameters() if id(parameter) in ids}


def test_llama_norms_and_biases_are_not_decayed() -> None:
    model = _tiny_llama()
    decay, no_decay = parameter_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    undecayed = _names(model, no_decay)
    decayed = _names(model, decay)
    assert "model.norm.weight" in undecayed
    assert "model.layers.0.input_layernorm.weight" in undecayed
    assert "model.layers.1.post_attention_layernorm.weight" in undecayed
    assert "model.layers.0.self_attn.q_proj.bias" in undecayed
    assert "model.layers.0.self_attn.q_proj.weight" in decayed
    assert "model.layers.1.mlp.down_proj.weight" in decayed
    assert "model.embed_tokens.weight" in decayed and "lm_head.weight" in decayed
    assert all(len(dict(model.named_parameters())[name].shape) >= 2 for name in decayed)
    assert decayed.isdisjoint(undecayed)
    assert decayed | undecayed == {name for name, _ in model.named_parameters()}


def test_tied_weight_is_one_parameter_in_one_group() -> None:
    model = _tiny_llama(tie=True)
    decay, no_decay = parameter_groups(model, weight_decay=0.1)
    ids = [id(parameter) for group in (decay, no_decay) for parameter in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # parameters() deduplicates ties


def test_custom_norm_class_and_frozen_parameters() -> None:
    block = FakeBlock()
    decay, no_decay = parameter_groups(block, weight_decay=0.5)
    assert _names(block, decay) == {"proj.weight"}
    assert _names(block, no_decay) == {"norm.weight", "proj.bias"}  # frozen.weight trains not at all


def test_adamw_step_shrinks_only_decayed_parameters() -> None:
    """Observed effect, not the grouping itself: with zero gradients, only decoupled decay moves a weight."""
    model = _tiny_llama()
    config = TrainConfig(lr=0.1, weight_decay=0.5)
    optimizer = build_optimizer(model, config)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    after = dict(model.named_parameters())
    norm = "model.layers.0.input_layernorm.weight"
    bias = "model.layers.0.self_attn.k_proj.bias"
    weight = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(after[norm], before[norm])
    assert torch.equal(after[bias], before[bias])
    assert torch.allclose(after[weight], before[weight] * (1 - 0.1 * 0.5))


def test_scheduler_last_lr_before_a_step_is_that_steps_rate() -> None:
    model = _tiny_llama()
    config = TrainConfig(lr=1.0, warmup_steps=2, schedule="linear")
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, total_steps=6)
    used = []
    for _ in range(6):
        rate = scheduler.get_last_lr()[0]
        assert all(group["lr"] == rate for group in optimizer.param_groups)  # what step() will apply
        used.append(rate)
        optimizer.step()
        scheduler.step()
    assert used == [1 / 3, 2 / 3, 1.0, 0.75, 0.5, 0.25]
