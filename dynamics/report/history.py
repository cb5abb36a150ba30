"""A sweep's finished trials read back from MLflow once: their factors, the metric keys each logged, and each
(trial, key) history fetched at most once however many figures draw it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mlflow.entities import Run

from dynamics.config import TrialFactors
from dynamics.tracking import TrackedRun, child_runs

SELECTED_PREFIX = "selected/"  # checkpoint selection's result: the test scores at the step chosen on valid


@dataclass(frozen=True)
class Trial:
    """One finished trial: its MLflow run, its grid factors and the metric keys it logged."""

    run_id: str
    name: str
    factors: TrialFactors
    keys: frozenset[str]


def finished_trials(runs: Iterable[Run]) -> list[Trial]:
    """The FINISHED runs among `runs` as trials, in factor order (a failed trial's partial curve is no result)."""
    trials = [
        Trial(
            run.info.run_id,
            run.info.run_name or "",
            TrialFactors.from_params(run.data.params),
            frozenset(run.data.metrics),
        )
        for run in runs
        if run.info.status == "FINISHED"
    ]
    return sorted(
        trials,
        key=lambda t: (
            t.factors.recipe or "",
            t.factors.volume,
            t.factors.model,
            t.factors.permutation,
            t.factors.seed,
        ),
    )


@dataclass
class SweepHistory:
    """The finished trials of one sweep and a cache of their metric histories (step-sorted (step, value))."""

    sweep: TrackedRun
    trials: Sequence[Trial]
    _cache: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, sweep: TrackedRun) -> SweepHistory:
        return cls(sweep, finished_trials(child_runs(sweep)))

    def keys(self) -> set[str]:
        """Every metric key some finished trial logged."""
        return set().union(*(trial.keys for trial in self.trials))

    def keys_under(self, prefix: str) -> list[str]:
        """The logged keys that start with `prefix`, sorted."""
        return sorted(key for key in self.keys() if key.startswith(prefix))

    def has(self, key: str) -> bool:
        return any(key in trial.keys for trial in self.trials)

    def logging(self, key: str) -> list[Trial]:
        """The trials that logged `key` (a trial without it is not a zero, it is absent)."""
        return [trial for trial in self.trials if key in trial.keys]

    def history(self, trial: Trial, key: str) -> list[tuple[int, float]]:
        """`key`'s (step, value) points of `trial`, sorted by step; empty where the trial did not log it."""
        if key not in trial.keys:
            return []
        cached = self._cache.get((trial.run_id, key))
        if cached is None:
            points = self.sweep.client.get_metric_history(trial.run_id, key)
            cached = sorted((int(point.step), float(point.value)) for point in points)
            self._cache[(trial.run_id, key)] = cached
        return cached

    def result(self, trial: Trial, key: str) -> float | None:
        """A trial's result for `key`: the value at the checkpoint selected on valid (`selected/<key>`) when the
        trial selected one, else the value at its last logged step; None where it logged neither."""
        selected = self.history(trial, SELECTED_PREFIX + key)
        if selected:
            return selected[-1][1]
        points = self.history(trial, key)
        return points[-1][1] if points else None
