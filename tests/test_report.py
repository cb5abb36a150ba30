"""The report's numbers against the MLflow store they are read from: a real SQLite store holds a small sweep's
metric histories (3 seeds per cell, one cell with a failed seed); the figure's drawn lines and bands and the
early-phase table must equal means and Student-t intervals computed here straight from the store's history."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dynamics.report import NothingToReport, mean_interval, report_sweep
from dynamics.tracking import TrackedRun, child_runs, start_sweep_run, start_trial_run

METRIC = "test_loss/macro"
STEPS = [0, 2, 4, 6, 8, 10]


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% interval the textbook way (numpy + scipy), independent of the code under test."""
    array = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array))
    return float(array.mean()), float(array.mean() - half), float(array.mean() + half)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> TrackedRun:
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    parent = start_sweep_run(uri, "report-test", "sweep", {"grid": "test"})
    rng = random.Random(7)
    for permutation, level in [("nft", 2.0), ("rt", 2.3), ("fft", 2.6)]:
        for seed in range(3):
            factors = {"volume": 160, "model": "tiny-0.5m", "permutation": permutation, "seed": seed}
            trial = start_trial_run(parent, f"{permutation}-{seed}", factors)
            for step in STEPS:
                trial.log_metric(METRIC, level - 0.05 * step + rng.uniform(-0.1, 0.1), step=step)
            if permutation == "fft" and seed == 2:
                trial.fail("a dead worker")  # its partial curve must not enter the means
            else:
                trial.finish()
    return parent


def history(sweep: TrackedRun) -> dict[tuple[str, int], dict[int, float]]:
    """(permutation, seed) → step → value of every finished trial, read from the store directly."""
    found = {}
    for run in child_runs(sweep):
        if run.info.status == "FINISHED":
            points = sweep.client.get_metric_history(run.info.run_id, METRIC)
            found[(run.data.params["permutation"], int(run.data.params["seed"]))] = {p.step: p.value for p in points}
    return found


def test_mean_interval_is_the_student_t_interval() -> None:
    interval = mean_interval([1.0, 2.0, 3.0])
    assert interval.mean == pytest.approx(2.0)
    assert interval.half_width == pytest.approx(4.302652729911275 / math.sqrt(3))  # t(0.975, 2) · s / √n, s = 1
    single = mean_interval([1.5])
    assert (single.low, single.high, single.half_width) == (1.5, 1.5, None)
    with pytest.raises(ValueError, match="no values"):
        mean_interval([])


def test_figure_numbers_are_the_store_means_and_intervals(sweep: TrackedRun, tmp_path: Path) -> None:
    summary = report_sweep(sweep, tmp_path)
    assert Path(summary["figure"]).stat().st_size > 10_000  # a real PNG, not an empty canvas
    drawn = json.loads((tmp_path / "test_loss_vs_step.json").read_text())["series"]
    by_label = {series["label"]: series for series in drawn}
    found = history(sweep)
    for permutation, seeds in [("nft", 3), ("rt", 3), ("fft", 2)]:
        line = by_label[f"{permutation} (mean of {seeds} seeds)"]
        band = by_label[f"95% interval: {permutation} (mean of {seeds} seeds)"]
        assert line["panel"] == "tiny-0.5m, 160 examples" and line["x"] == STEPS and band["x"] == STEPS
        for i, step in enumerate(STEPS):
            mean, low, high = t_interval([found[(permutation, seed)][step] for seed in range(seeds)])
            assert line["y"][i] == pytest.approx(mean) and band["low"][i] == pytest.approx(low)
            assert band["high"][i] == pytest.approx(high)


def test_early_phase_table_is_the_store_early_means(sweep: TrackedRun, tmp_path: Path) -> None:
    table = report_sweep(sweep, tmp_path)["early_phase"]
    assert table == json.loads((tmp_path / "early_phase.json").read_text())["early_phase"]
    found = history(sweep)
    for row in table:
        seeds = sorted(seed for permutation, seed in found if permutation == row["permutation"])
        early = [np.mean([found[(row["permutation"], s)][step] for step in STEPS if step <= 10 / 3]) for s in seeds]
        mean, low, high = t_interval(early)
        assert row["seeds"] == len(seeds) == (2 if row["permutation"] == "fft" else 3) and row["recipe"] is None
        assert row["early_mean_test_loss"] == pytest.approx(mean)
        assert (row["early_mean_test_loss_ci95_low"], row["early_mean_test_loss_ci95_high"]) == pytest.approx(
            (low, high)
        )
        assert row["per_seed"] == {str(s): pytest.approx(e) for s, e in zip(seeds, early, strict=True)}


def test_the_report_is_logged_to_the_parent_run(sweep: TrackedRun, tmp_path: Path) -> None:
    report_sweep(sweep, tmp_path)
    logged = {artifact.path for artifact in sweep.client.list_artifacts(sweep.run_id)}
    assert {"test_loss_vs_step.png", "test_loss_vs_step.json", "early_phase.json"} <= logged


def test_a_sweep_without_finished_trials_has_nothing_to_report(tmp_path: Path) -> None:
    parent = start_sweep_run(f"sqlite:///{tmp_path / 'mlflow.db'}", "empty", "sweep", {})
    start_trial_run(parent, "only", {"volume": 1, "model": "m", "permutation": "nft", "seed": 0}).fail("boom")
    with pytest.raises(NothingToReport, match=parent.run_id):
        report_sweep(parent, tmp_path)
