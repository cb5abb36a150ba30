"""Per-model train and scaling overrides: one sweep holds a 7B on ZeRO-2 and a 33B on ZeRO-3 with offload."""

from __future__ import annotations

import pytest

from dynamics.config import ConfigError, parse_config

SIZES = {"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1}


def _config(big: dict, **sections):
    models = {"7b": {"builtin": SIZES}, "33b": {"builtin": SIZES, **big}}
    return parse_config({"models": models, "grid": {"model": ["7b", "33b"]}, **sections})


def test_a_models_overrides_apply_to_it_alone():
    config = _config(
        {
            "train": {"zero_stage": 3, "micro_batch_size": 1, "offload_params": True, "gradient_checkpointing": True},
            "scaling": {"num_workers": 8, "use_gpu": True},
        },
        train={"zero_stage": 2, "global_batch_size": 64, "micro_batch_size": 4, "lr": 1e-5},
    )
    big, small = config.train_for("33b"), config.train_for("7b")
    assert (big.zero_stage, big.micro_batch_size, big.offload_params, big.gradient_checkpointing) == (3, 1, True, True)
    assert big.lr == 1e-5 and big.global_batch_size == 64  # the rest comes from `train`
    assert (small.zero_stage, small.micro_batch_size, small.offload_params) == (2, 4, False)
    assert config.scaling_for("33b").num_workers == 8 and config.scaling_for("7b").num_workers == 2


def test_overrides_that_break_the_batch_geometry_name_the_model():
    with pytest.raises(ConfigError, match=r"global_batch_size \(16\).*models\.33b\.scaling\.num_workers \(3\)"):
        _config({"scaling": {"num_workers": 3}})


def test_overrides_that_do_not_combine_name_the_model_and_the_rule():
    with pytest.raises(ConfigError, match=r"models\.33b.*offload_params needs zero_stage 3"):
        _config({"train": {"offload_params": True}})


def test_an_unknown_override_key_is_named():
    with pytest.raises(ConfigError, match=r"models\.33b\.train\.zero_stag"):
        _config({"train": {"zero_stag": 3}})
