"""Resource shapes checked against a capacity before Ray: unset CPUs fitted, impossible shapes named."""

from __future__ import annotations

import pytest

from dynamics.config import parse_config
from dynamics.sweep.resources import (
    Capacity,
    concurrency_shortfall,
    fit_to_capacity,
    machine_cpus,
    resource_problems,
    trial_cpus,
)

MODELS = {
    "m": {"builtin": {"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1}}
}


def config(**sections):
    return parse_config({"models": MODELS, "grid": {"model": ["m"]}, **sections})


def test_unset_cpus_per_worker_is_fitted_so_one_trial_fits_two_cpus():
    fitted = fit_to_capacity(config(), Capacity(cpus=2.0, gpus=0))  # no scaling section: 2 workers × 1 CPU
    assert fitted.scaling.cpus_per_worker == pytest.approx(0.95)
    assert trial_cpus(fitted.scaling) <= 2.0 and resource_problems(fitted, Capacity(2.0, 0)) == []


def test_unset_cpus_left_alone_when_the_trial_already_fits():
    assert fit_to_capacity(config(), Capacity(cpus=16.0, gpus=0)).scaling.cpus_per_worker == 1.0


def test_a_cpus_per_worker_the_user_set_is_never_changed_and_its_overflow_is_named():
    chosen = config(scaling={"num_workers": 2, "cpus_per_worker": 1.0})
    assert fit_to_capacity(chosen, Capacity(2.0, 0)).scaling.cpus_per_worker == 1.0
    (problem,) = resource_problems(chosen, Capacity(2.0, 0))
    assert "2.01 CPUs" in problem and "scaling.num_workers 2" in problem and "has 2" in problem


def test_gpus_and_embedding_pool_shapes_that_cannot_fit_are_named():
    big = config(
        scaling={"use_gpu": True, "num_workers": 2, "cpus_per_worker": 0.5},
        arrange={"num_actors": 8, "cpus_per_actor": 1.0, "gpus_per_actor": 1.0},
        train={"global_batch_size": 16, "micro_batch_size": 8},
    )
    problems = resource_problems(big, Capacity(cpus=4.0, gpus=1))
    assert any("2 GPUs" in p and "scaling.use_gpu" in p for p in problems)
    assert any("8 CPUs" in p and "arrange.num_actors 8" in p for p in problems)
    assert any("arrange.gpus_per_actor" in p and "8 GPUs" in p for p in problems)


def test_more_workers_than_cpus_even_at_the_smallest_share_is_an_error():
    crowded = config(scaling={"num_workers": 64}, train={"global_batch_size": 512, "micro_batch_size": 8})
    fitted = fit_to_capacity(crowded, Capacity(cpus=2.0, gpus=0))
    assert resource_problems(fitted, Capacity(2.0, 0)) != []


def test_machine_cpus_is_what_this_process_may_use():
    import os

    assert 1 <= machine_cpus() <= len(os.sched_getaffinity(0))


TWO_MODELS = {
    "small": MODELS["m"],
    "big": {**MODELS["m"], "scaling": {"num_workers": 4, "use_gpu": True, "gpus_per_worker": 2}},
}


def test_each_models_own_scaling_is_checked_and_named_by_its_key():
    two = parse_config(
        {"models": TWO_MODELS, "grid": {"model": ["small", "big"]}, "train": {"global_batch_size": 32}}
    )
    problems = resource_problems(two, Capacity(cpus=64.0, gpus=4))
    (problem,) = problems  # small fits; big asks for 4 workers × 2 GPUs
    assert "models.big.scaling.use_gpu" in problem and "8 GPUs" in problem and "has 4" in problem


def test_unset_cpus_are_fitted_for_the_model_with_the_most_workers():
    models = {"small": MODELS["m"], "wide": {**MODELS["m"], "scaling": {"num_workers": 4}}}
    two = parse_config({"models": models, "grid": {"model": ["small", "wide"]}, "train": {"global_batch_size": 32}})
    fitted = fit_to_capacity(two, Capacity(cpus=2.0, gpus=0))
    assert fitted.scaling_for("wide").cpus_per_worker == pytest.approx(0.45)  # 4 × 0.45 + 0.01 ≤ 2
    assert resource_problems(fitted, Capacity(2.0, 0)) == []


def test_unset_cpus_are_fitted_so_max_concurrent_trials_fit_at_once():
    two_at_once = config(scaling={"max_concurrent_trials": 2}, grid={"model": ["m"], "seed": [0, 1]})
    fitted = fit_to_capacity(two_at_once, Capacity(cpus=2.0, gpus=0))
    assert fitted.scaling.cpus_per_worker == pytest.approx(0.45)  # 2 trials × (2 × 0.45 + 0.01) ≤ 2
    assert 2 * trial_cpus(fitted.scaling) <= 2.0 and concurrency_shortfall(fitted, Capacity(2.0, 0)) is None


def test_concurrency_is_fitted_only_for_trials_the_grid_has():
    grid = {"model": ["m"], "volume": [16], "permutation": ["nft"]}
    one_trial = config(scaling={"max_concurrent_trials": 4}, grid=grid)
    fitted = fit_to_capacity(one_trial, Capacity(cpus=2.0, gpus=0))
    assert fitted.scaling.cpus_per_worker == pytest.approx(0.95)  # one trial in the grid: it alone must fit


def test_a_set_cpus_per_worker_that_serialises_the_trials_is_named_with_the_figures():
    serial = config(scaling={"cpus_per_worker": 0.5, "max_concurrent_trials": 2})
    assert fit_to_capacity(serial, Capacity(2.0, 0)).scaling.cpus_per_worker == 0.5  # the user's value stands
    warning = concurrency_shortfall(serial, Capacity(2.0, 0))
    assert warning is not None and "max_concurrent_trials is 2" in warning and "only 1 trial(s)" in warning
    assert "2 workers × 0.5 CPUs + 0.01" in warning and "= 1.01" in warning
    assert concurrency_shortfall(serial, Capacity(4.0, 0)) is None
