"""Trials' metric histories read back from MLflow, and their mean over seeds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from mlflow.entities import Run

from dynamics.config import TrialFactors
from dynamics.report.intervals import Interval, mean_interval
from dynamics.tracking import TrackedRun

HEADLINE_METRIC = "test_loss/macro"


@dataclass(frozen=True)
class Curve:
    """One trial's metric history, sorted by step."""

    factors: TrialFactors
    steps: list[int]
    values: list[float]


@dataclass(frozen=True)
class MeanCurve:
    """One cell's curve averaged over its seeds, at the steps every seed evaluated."""

    volume: int
    model: str
    permutation: str
    steps: list[int]
    points: list[Interval]

    @property
    def seeds(self) -> int:
        return self.points[0].n if self.points else 0


def read_curves(sweep: TrackedRun, runs: Sequence[Run], metric: str = HEADLINE_METRIC) -> list[Curve]:
    """The metric history of each finished trial."""
    curves = []
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        history = sorted(sweep.client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        factors = TrialFactors.from_params(run.data.params)
        curves.append(Curve(factors, [m.step for m in history], [m.value for m in history]))
    return curves


def cell_of(factors: TrialFactors) -> tuple[int, str, str]:
    """What a seed replicates: every factor but the seed."""
    return factors.volume, factors.model, factors.permutation


def by_cell(curves: Sequence[Curve]) -> dict[tuple[int, str, str], list[Curve]]:
    """Curves grouped by cell, in cell order, each group in seed order."""
    grouped: dict[tuple[int, str, str], list[Curve]] = defaultdict(list)
    for curve in sorted(curves, key=lambda c: (cell_of(c.factors), c.factors.seed)):
        grouped[cell_of(curve.factors)].append(curve)
    return dict(sorted(grouped.items()))


def mean_curves(curves: Sequence[Curve]) -> list[MeanCurve]:
    """Per cell, the mean and 95% interval over seeds at each step that all of the cell's seeds logged."""
    means = []
    for (volume, model, permutation), group in by_cell(curves).items():
        shared = sorted(set.intersection(*(set(c.steps) for c in group)))
        at = [dict(zip(c.steps, c.values, strict=True)) for c in group]
        points = [mean_interval([values[step] for values in at]) for step in shared]
        means.append(MeanCurve(volume, model, permutation, shared, points))
    return means
