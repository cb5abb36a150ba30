"""Checkpoint selection: the best step of a named set's metric among those where the test split was evaluated,
and the test scores at that step, worked out by hand on small histories."""

from __future__ import annotations

import pytest

from dynamics.evaluate.selection import headline_key, selected_scores


def test_the_lowest_valid_loss_picks_the_step_and_its_test_scores() -> None:
    history = {
        "valid_loss/macro": [(0, 2.0), (10, 1.5), (20, 1.7)],
        "test_loss/macro": [(0, 2.2), (10, 1.9), (20, 1.6)],  # test would prefer step 20: selection must not peek
        "test_rouge_l/macro": [(0, 1.0), (10, 4.0), (20, 5.0)],
    }
    assert selected_scores(history, "valid", "loss") == {
        "selected/step": 10.0,
        "selected/valid_loss/macro": 1.5,
        "selected/test_loss/macro": 1.9,
        "selected/test_rouge_l/macro": 4.0,
    }


def test_a_higher_is_better_score_uses_its_overall_mean_and_ties_take_the_earliest_step() -> None:
    history = {
        "valid_ability/overall": [(0, 10.0), (5, 40.0), (10, 40.0), (15, 20.0)],
        "test_ability/overall": [(0, 12.0), (5, 30.0), (10, 35.0), (15, 50.0)],
    }
    selected = selected_scores(history, "valid", "ability")
    assert selected["selected/step"] == 5.0 and selected["selected/test_ability/overall"] == 30.0


def test_only_steps_the_test_split_was_evaluated_at_are_candidates() -> None:
    history = {
        "valid_loss/macro": [(0, 3.0), (3, 0.5), (10, 1.0)],  # step 3: valid only
        "test_loss/macro": [(0, 3.1), (10, 1.2)],
    }
    assert selected_scores(history, "valid", "loss")["selected/step"] == 10.0


def test_a_test_metric_missing_at_the_chosen_step_is_left_out_not_invented() -> None:
    history = {
        "valid_loss/macro": [(0, 3.0), (10, 1.0)],
        "test_loss/macro": [(0, 3.1), (10, 1.2)],
        "test_reward/macro": [(0, 0.1)],  # a coarser cadence: not evaluated at step 10
    }
    selected = selected_scores(history, "valid", "loss")
    assert "selected/test_reward/macro" not in selected and selected["selected/test_loss/macro"] == 1.2


def test_a_metric_never_evaluated_is_a_named_error() -> None:
    with pytest.raises(ValueError, match="valid_rouge_l/macro was never evaluated"):
        selected_scores({"test_loss/macro": [(0, 1.0)]}, "valid", "rouge_l")


def test_headline_keys() -> None:
    assert headline_key("valid", "loss") == "valid_loss/macro"
    assert headline_key("ceval", "ability") == "ceval_ability/overall"
