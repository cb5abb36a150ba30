"""`evaluate.sets` and `evaluate.select`: each set comes from exactly one place under a usable, unique name, and
selection names a set and one of its metrics; the planning step names an unregistered metric of a set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dynamics.config import ConfigError, EvaluateConfig, parse_config
from dynamics.sweep.plan import check_names

OOD = {"source": "sharegpt", "path": "ood.jsonl", "split": "all"}


def _config(**sections):
    return parse_config(
        {
            "models": {
                "m": {
                    "builtin": {
                        "hidden_size": 8,
                        "intermediate_size": 8,
                        "num_hidden_layers": 1,
                        "num_attention_heads": 1,
                    }
                }
            },
            "grid": {"model": ["m"]},
            **sections,
        }
    )


@pytest.mark.parametrize(
    ("sets", "select", "message"),
    [
        ([{"name": "valid"}], None, "exactly one of 'split'"),
        ([{"name": "valid", "split": "valid", "source": OOD}], None, "exactly one of 'split'"),
        ([{"name": "test", "split": "valid"}], None, "'test' is reserved"),
        ([{"name": "Valid-1", "split": "valid"}], None, "should match pattern"),
        ([{"name": "ood", "source": OOD}, {"name": "ood", "source": OOD}], None, "used more than once: ['ood']"),
        ([{"name": "valid", "split": "valid"}], {"set": "dev"}, "'dev' is not one of evaluate.sets: ['valid']"),
        ([{"name": "valid", "split": "valid"}], {"set": "valid", "metric": "ability"}, "'ability' is not evaluated"),
    ],
)
def test_a_malformed_set_or_selection_is_refused(sets, select, message) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        EvaluateConfig(sets=sets, select=select)


def test_a_valid_set_defaults_to_loss_at_the_training_cadence() -> None:
    config = EvaluateConfig(sets=[{"name": "valid", "split": "valid"}], select={"set": "valid"})
    (entry,) = config.sets
    assert entry.metrics == ["loss"] and entry.every is None and config.select.metric == "loss"


def test_an_unregistered_metric_of_a_set_is_named_with_its_key() -> None:
    config = _config(evaluate={"sets": [{"name": "ood", "source": OOD, "metrics": ["loss", "rouge_ll"]}]})
    with pytest.raises(ConfigError) as error:
        check_names(config, "study.yaml")
    text = str(error.value)
    assert "evaluate.sets[0].metrics" in text and "'ood'" in text and "did you mean 'rouge_l'" in text


def test_scoring_checkpoints_needs_some_to_score() -> None:
    with pytest.raises(ConfigError, match="no eval checkpoint is saved to score: set checkpoints.eval_every"):
        _config(evaluate={"on_checkpoints": {"metrics": ["rouge_l"], "base_model": False}})
    only_base = _config(evaluate={"on_checkpoints": {"metrics": ["rouge_l"]}})  # the base model, at step 0
    assert only_base.evaluate.on_checkpoints.base_model


def test_checkpoint_metrics_are_checked_by_name_and_need_their_reward_model() -> None:
    config = _config(evaluate={"on_checkpoints": {"metrics": ["exact_matc", "reward"]}}, checkpoints={"eval_every": 10})
    with pytest.raises(ConfigError) as error:
        check_names(config, "study.yaml")
    text = str(error.value)
    assert "evaluate.on_checkpoints.metrics" in text and "did you mean 'exact_match'" in text
    assert "'reward' needs a reward model" in text
