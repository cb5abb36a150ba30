"""The sweep's one progress view: trials done / running / failed, each running trial's step, an ETA.

Tune's own tables (every trial's config, repeated every 30 s) are turned off (`verbose=0`); this view prints one
line when a trial starts, ends or fails, and a status line at most every `every_s` seconds. The running trials'
steps come from the tracking store (`progress/step` and `total_steps`, which rank 0 logs), so the view shows
what MLflow holds, the same numbers a person sees in its UI.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from ray import tune

from dynamics.train.loop import PROGRESS_STEP_METRIC

TOTAL_METRIC = "total_steps"

# run name → (steps done, total steps) of each trial the store holds as RUNNING
StepsReader = Callable[[], Mapping[str, tuple[int, int]]]


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(frozen=True)
class Counts:
    """Trials by Tune status: the authority on what is done, also after a resumed sweep restores its trials."""

    done: int
    running: int
    failed: int
    waiting: int

    @property
    def total(self) -> int:
        return self.done + self.running + self.failed + self.waiting

    @classmethod
    def of(cls, statuses: list[str], total: int) -> Counts:
        """Counts of `total` trials, of which Tune has created those with `statuses` (it creates grid points
        only as there is room to run them: the others are waiting too)."""
        done = statuses.count("TERMINATED")
        running = statuses.count("RUNNING")
        failed = statuses.count("ERROR")
        return cls(done, running, failed, max(total, len(statuses)) - done - running - failed)


@dataclass
class ProgressState:
    """When each running trial started and how long the finished ones took (this process's clock)."""

    concurrency: int
    started_at: float
    running: dict[str, tuple[str, float]] = field(default_factory=dict)  # Tune trial id → (name, start)
    walls: list[float] = field(default_factory=list)

    def start(self, trial_id: str, name: str, now: float) -> None:
        self.running[trial_id] = (name, now)

    def end(self, trial_id: str, now: float, ok: bool) -> float:
        """Forget the trial as running; its wall time (kept for the ETA when it finished)."""
        _, started = self.running.pop(trial_id, ("", now))
        if ok:
            self.walls.append(now - started)
        return now - started

    def eta_s(self, counts: Counts, fractions: Mapping[str, float]) -> float | None:
        """Seconds left: the mean wall of the trials finished here times the work left (waiting trials whole,
        running ones by their share of steps still to do), over the trials that run at once; None before one
        trial has finished."""
        if not self.walls:
            return None
        running_left = sum(1 - fractions.get(name, 0.0) for name, _ in self.running.values())
        mean_wall = sum(self.walls) / len(self.walls)
        return mean_wall * (counts.waiting + running_left) / max(1, self.concurrency)

    def line(self, now: float, counts: Counts, steps: Mapping[str, tuple[int, int]]) -> str:
        fractions = {name: done / total for name, (done, total) in steps.items() if total > 0}
        eta = self.eta_s(counts, fractions)
        parts = [
            f"[{_duration(now - self.started_at)}] trials: {counts.done} done, {counts.running} running, "
            f"{counts.failed} failed, {counts.waiting} waiting of {counts.total}",
            "ETA " + ("after the first trial" if eta is None else _duration(eta)),
        ]
        for name, _ in sorted(self.running.values(), key=lambda entry: entry[1]):
            done, total = steps.get(name, (0, 0))
            parts.append(f"{name}: " + (f"step {done}/{total}" if total else "starting"))
        return " · ".join(parts)


class SweepProgress(tune.Callback):
    """Tune callback that prints the progress view to the terminal (`out`: another stream, for tests)."""

    def __init__(
        self,
        total: int,
        concurrency: int,
        steps: StepsReader,
        name_of: Callable[[dict[str, Any]], str],
        every_s: float = 15.0,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._total, self._concurrency = total, concurrency
        self._steps, self._name_of, self._every_s = steps, name_of, every_s
        self._out, self._clock = out, clock
        self.setup()

    def setup(self, **info: Any) -> None:
        """Fresh timings at the start of every fit: a restored (resumed) sweep brings this object back pickled."""
        self._state = ProgressState(self._concurrency, self._clock())
        self._last = self._state.started_at

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_out"}  # a stream does not pickle

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _out=None)

    def _print(self, text: str) -> None:
        print(text, file=self._out or sys.stdout, flush=True)

    def _status(self, trials: list, finished: Any = None) -> None:
        """The status line; `finished`: a trial Tune still holds RUNNING while it calls on_trial_complete."""
        now = self._clock()
        self._last = now
        try:
            steps = self._steps()
        except Exception as error:  # the view must never stop a sweep: say so and show what is known
            self._print(f"progress: could not read the running trials' steps ({type(error).__name__}: {error})")
            steps = {}
        statuses = ["TERMINATED" if trial is finished else trial.status for trial in trials]
        self._print(self._state.line(now, Counts.of(statuses, self._total), steps))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        name = self._name_of(trial.config)
        self._state.start(trial.trial_id, name, self._clock())
        self._print(f"started {name}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        wall = self._state.end(trial.trial_id, self._clock(), ok=True)
        self._print(f"finished {self._name_of(trial.config)} in {_duration(wall)}")
        self._status(trials, finished=trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        wall = self._state.end(trial.trial_id, self._clock(), ok=False)
        self._print(f"FAILED {self._name_of(trial.config)} after {_duration(wall)}")
        self._status(trials)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._clock() - self._last >= self._every_s:
            self._status(trials)


def running_steps(runs: list[Any]) -> dict[str, tuple[int, int]]:
    """run name → (steps done, total steps) of the RUNNING runs among `runs` (MLflow Run objects)."""
    found = {}
    for run in runs:
        if run.info.status == "RUNNING":
            metrics = run.data.metrics
            found[run.info.run_name] = (int(metrics.get(PROGRESS_STEP_METRIC, 0)), int(metrics.get(TOTAL_METRIC, 0)))
    return found
