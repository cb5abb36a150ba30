"""What `--resume` compares: resolved configs key by key, leaves named with their full dotted path."""

from __future__ import annotations

from dynamics.config import SweepConfig
from dynamics.sweep.resume import changed_keys, flattened, tune_experiment_name

MODELS = {
    "tiny": {"builtin": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}}
}


def _config(**changes) -> dict:
    return SweepConfig.model_validate({"models": MODELS, "grid": {"model": ["tiny"]}} | changes).model_dump()


def test_the_same_config_has_no_changed_keys():
    assert changed_keys(_config(), _config()) == []


def test_each_changed_leaf_is_named_by_its_path():
    ran = _config()
    now = _config(train={"lr": 0.5, "epochs": 3}, grid={"model": ["tiny"], "seed": [0, 1]})
    assert changed_keys(ran, now) == ["grid.seed", "train.epochs", "train.lr"]


def test_added_and_removed_keys_count_as_changed():
    assert changed_keys({"a": {"b": 1}}, {"a": {"c": 1}}) == ["a.b", "a.c"]
    assert flattened({"a": {"b": [1, 2]}}) == {"a.b": [1, 2]}  # a list is one value


def test_tuples_compare_equal_to_the_lists_json_gives_back():
    ran = {"train": {"betas": [0.9, 0.95]}}
    assert changed_keys(ran, {"train": {"betas": (0.9, 0.95)}}) == []


def test_the_tune_folder_is_fixed_by_name_and_parent_run():
    config = SweepConfig.model_validate({"name": "study", "models": MODELS, "grid": {"model": ["tiny"]}})
    assert tune_experiment_name(config, "0123456789abcdef") == "study-01234567"
