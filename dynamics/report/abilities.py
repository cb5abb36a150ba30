"""Study A's per-ability results read back from the runs: each trial's score per ability (at the checkpoint
selected on valid when there is one, else at its last step), grouped by everything but the seed."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from dynamics.config import FIXED_RECIPES
from dynamics.report.curves import recipe_rank
from dynamics.report.history import SweepHistory
from dynamics.report.intervals import Interval, mean_interval

ABILITY_PREFIX = "test_ability/"
CHANCE_PREFIX = "test_ability_chance/"
OVERALL = "overall"


@dataclass(frozen=True)
class AbilityPoint:
    """One ability's score of one (model, recipe, permutation, volume): each seed's, and their mean ± 95% interval."""

    ability: str
    model: str
    recipe: str | None
    permutation: str
    volume: int
    per_seed: dict[int, float]

    @property
    def interval(self) -> Interval:
        return mean_interval([self.per_seed[seed] for seed in sorted(self.per_seed)])

    @property
    def line(self) -> tuple[str, str | None, str]:
        """What a line of the score-vs-volume figure (and a growth-pace fit) holds fixed."""
        return (self.model, self.recipe, self.permutation)


def abilities_of(history: SweepHistory) -> list[str]:
    """The abilities scored in the sweep, `overall` last."""
    names = [key.removeprefix(ABILITY_PREFIX) for key in history.keys_under(ABILITY_PREFIX)]
    return sorted(name for name in names if name != OVERALL) + ([OVERALL] if OVERALL in names else [])


def has_abilities_over_volumes(history: SweepHistory) -> bool:
    """Ability scores at two volumes or more: enough for a score-vs-volume figure."""
    volumes = {t.factors.volume for key in history.keys_under(ABILITY_PREFIX) for t in history.logging(key)}
    return len(volumes) >= 2


def ability_points(history: SweepHistory, ability: str) -> list[AbilityPoint]:
    """Every (model, recipe, permutation, volume)'s scores of `ability`, in that order (so each line's points come
    together and in volume order)."""
    grouped: dict[tuple, dict[int, float]] = defaultdict(dict)
    for trial in history.logging(ABILITY_PREFIX + ability):
        score = history.result(trial, ABILITY_PREFIX + ability)
        if score is not None:
            f = trial.factors
            grouped[(f.model, f.recipe, f.permutation, f.volume)][f.seed] = score
    ordered = sorted(grouped.items(), key=lambda item: (item[0][0], recipe_rank(item[0][1]), *item[0][2:]))
    return [AbilityPoint(ability, *key, per_seed) for key, per_seed in ordered]


def ability_lines(history: SweepHistory, ability: str) -> dict[tuple[str, str | None, str], list[AbilityPoint]]:
    """`ability_points` by line (model, recipe, permutation), each line's points in volume order."""
    lines: dict[tuple[str, str | None, str], list[AbilityPoint]] = defaultdict(list)
    for point in ability_points(history, ability):
        lines[point.line].append(point)
    return dict(lines)


def chance_level(history: SweepHistory, ability: str) -> float | None:
    """The ability's chance score (percent; constant over steps and trials of one test set), mean over trials."""
    values = [history.result(t, CHANCE_PREFIX + ability) for t in history.logging(CHANCE_PREFIX + ability)]
    found = [value for value in values if value is not None]
    return math.fsum(found) / len(found) if found else None


def is_fixed(recipe: str | None) -> bool:
    """A fixed recipe (baseline, reconstruct, maximum) is one point of its own size, not a curve over volumes."""
    return recipe in FIXED_RECIPES
