"""Trials' metric histories as curves, grouped into cells (every factor but the seed), and their mean over seeds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from mlflow.entities import Run

from dynamics.config import FIXED_RECIPES, RECIPE_FAMILIES, TrialFactors, grid_recipe_name
from dynamics.report.history import SweepHistory, finished_trials
from dynamics.report.intervals import Interval, mean_interval
from dynamics.tracking import TrackedRun

HEADLINE_METRIC = "test_loss/macro"


@dataclass(frozen=True)
class Curve:
    """One trial's metric history, sorted by step."""

    factors: TrialFactors
    steps: list[int]
    values: list[float]


class Cell(NamedTuple):
    """What a seed replicates: every factor but the seed (curated-160 and synthetic-160 are two cells)."""

    recipe: str | None
    volume: int
    model: str
    permutation: str

    @property
    def data(self) -> str:
        return data_label(self.recipe, self.volume)


def data_label(recipe: str | None, volume: int) -> str:
    """How a report names a trial's training data: `160 examples`, `curated-640`, `baseline (10000 examples)`."""
    if recipe is None:
        return f"{volume} examples"
    if recipe in FIXED_RECIPES:
        return f"{recipe} ({volume} examples)"
    return grid_recipe_name(recipe, volume)


def cell_of(factors: TrialFactors) -> Cell:
    return Cell(factors.recipe, factors.volume, factors.model, factors.permutation)


def recipe_rank(recipe: str | None) -> tuple[int, str]:
    """Where a recipe sorts: none first, then the families (curated, synthetic, mix), then the fixed recipes."""
    if recipe is None:
        return (0, "")
    if recipe in RECIPE_FAMILIES:
        return (1 + RECIPE_FAMILIES.index(recipe), recipe)
    return (1 + len(RECIPE_FAMILIES), recipe)


def cell_order(cell: Cell) -> tuple[tuple[int, str], int, str, str]:
    """A sort key (None and str do not compare, so the recipe sorts by its rank)."""
    return (recipe_rank(cell.recipe), cell.volume, cell.model, cell.permutation)


@dataclass(frozen=True)
class MeanCurve:
    """One cell's curve averaged over its seeds, at the steps every seed evaluated."""

    recipe: str | None
    volume: int
    model: str
    permutation: str
    steps: list[int]
    points: list[Interval]

    @property
    def seeds(self) -> int:
        return self.points[0].n if self.points else 0

    @property
    def data(self) -> str:
        return data_label(self.recipe, self.volume)


def curves_of(history: SweepHistory, metric: str = HEADLINE_METRIC) -> list[Curve]:
    """The metric history of each finished trial that logged `metric`."""
    curves = []
    for trial in history.logging(metric):
        points = history.history(trial, metric)
        curves.append(Curve(trial.factors, [step for step, _ in points], [value for _, value in points]))
    return curves


def read_curves(sweep: TrackedRun, runs: Sequence[Run], metric: str = HEADLINE_METRIC) -> list[Curve]:
    """The metric history of each finished trial among `runs` that logged `metric`."""
    return curves_of(SweepHistory(sweep, finished_trials(runs)), metric)


def by_cell(curves: Sequence[Curve]) -> dict[Cell, list[Curve]]:
    """Curves grouped by cell, in cell order, each group in seed order."""
    grouped: dict[Cell, list[Curve]] = defaultdict(list)
    for curve in sorted(curves, key=lambda c: (cell_order(cell_of(c.factors)), c.factors.seed)):
        grouped[cell_of(curve.factors)].append(curve)
    return dict(sorted(grouped.items(), key=lambda item: cell_order(item[0])))


def mean_curve(cell: Cell, group: Sequence[Curve]) -> MeanCurve:
    """The mean and 95% interval over a cell's seeds at each step that all of them logged."""
    shared = sorted(set.intersection(*(set(c.steps) for c in group)))
    at = [dict(zip(c.steps, c.values, strict=True)) for c in group]
    points = [mean_interval([values[step] for values in at]) for step in shared]
    return MeanCurve(*cell, shared, points)


def mean_curves(curves: Sequence[Curve]) -> list[MeanCurve]:
    """Per cell, the mean and 95% interval over seeds at each step that all of the cell's seeds logged."""
    return [mean_curve(cell, group) for cell, group in by_cell(curves).items()]
