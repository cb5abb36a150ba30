"""The sweep's progress view, driven as Tune drives it: trial events and loop steps, with a fake clock and
fake trials (Tune's own objects need a running Tune loop)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from ray import cloudpickle

from dynamics.sweep.progress_view import Counts, SweepProgress, running_steps


@dataclass
class FakeTrial:
    trial_id: str
    config: dict
    status: str = "PENDING"


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSteps:
    steps: dict = field(default_factory=dict)

    def __call__(self) -> dict:
        return dict(self.steps)


def view(clock: FakeClock, steps: FakeSteps, out: io.StringIO) -> SweepProgress:
    return SweepProgress(4, 2, steps, lambda config: config["name"], every_s=15, out=out, clock=clock)


def test_events_and_status_lines_count_trials_and_show_running_steps_and_an_eta() -> None:
    clock, steps, out = FakeClock(), FakeSteps(), io.StringIO()
    progress = view(clock, steps, out)
    trials = [FakeTrial(f"t{i}", {"name": f"trial-{i}"}) for i in range(4)]
    for trial in trials[:2]:
        trial.status = "RUNNING"
        progress.on_trial_start(0, trials, trial)
    clock.now += 10
    progress.on_step_begin(1, trials)  # within every_s of the start: no status line yet
    steps.steps = {"trial-0": (4, 10), "trial-1": (2, 10)}
    clock.now += 10
    progress.on_step_begin(2, trials)
    clock.now += 40  # trial-0 took 60 s
    steps.steps = {"trial-1": (6, 10)}
    progress.on_trial_complete(3, trials, trials[0])  # Tune still holds it RUNNING here
    trials[0].status = "TERMINATED"
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["started trial-0", "started trial-1"]
    assert lines[2] == (
        "[20 s] trials: 0 done, 2 running, 0 failed, 2 waiting of 4 · ETA after the first trial · "
        "trial-0: step 4/10 · trial-1: step 2/10"
    )
    assert lines[3] == "finished trial-0 in 1 min 00 s"
    # ETA: mean wall 60 s × (2 waiting + trial-1's 40% left) / 2 at once = 72 s
    assert (
        lines[4]
        == "[1 min 00 s] trials: 1 done, 1 running, 0 failed, 2 waiting of 4 · ETA 1 min 12 s · trial-1: step 6/10"
    )


def test_a_failed_trial_is_named_and_counted() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = view(clock, FakeSteps(), out)
    trial = FakeTrial("t0", {"name": "trial-0"}, "RUNNING")
    progress.on_trial_start(0, [trial], trial)
    clock.now += 5
    trial.status = "ERROR"  # Tune sets it before calling on_trial_error
    progress.on_trial_error(1, [trial], trial)
    assert out.getvalue().splitlines()[1:] == [
        "FAILED trial-0 after 5 s",
        "[5 s] trials: 0 done, 0 running, 1 failed, 3 waiting of 4 · ETA after the first trial",
    ]


def test_a_store_that_cannot_be_read_is_said_and_the_sweep_goes_on() -> None:
    def broken() -> dict:
        raise OSError("database is locked")

    clock, out = FakeClock(), io.StringIO()
    progress = SweepProgress(1, 1, broken, lambda config: "x", every_s=1, out=out, clock=clock)
    clock.now += 2
    progress.on_step_begin(0, [])
    assert "could not read the running trials' steps (OSError: database is locked)" in out.getvalue()


def test_the_view_pickles_with_tunes_state_and_starts_afresh_when_restored() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = view(clock, FakeSteps(), out)
    progress.on_trial_start(0, [], FakeTrial("t0", {"name": "trial-0"}, "RUNNING"))
    restored = cloudpickle.loads(cloudpickle.dumps(progress))  # Tune saves its run config, callbacks too
    restored.setup()
    assert restored._state.running == {}


def test_counts_and_running_steps_read_what_they_are_given() -> None:
    assert Counts.of(["TERMINATED", "RUNNING", "ERROR", "PENDING", "PAUSED"], 5) == Counts(1, 1, 1, 2)
    assert Counts.of(["RUNNING", "RUNNING"], 6) == Counts(0, 2, 0, 4)  # Tune creates grid trials lazily

    @dataclass
    class FakeRun:
        info: object
        data: object

    @dataclass
    class Info:
        run_name: str
        status: str

    @dataclass
    class Data:
        metrics: dict

    runs = [
        FakeRun(Info("a", "RUNNING"), Data({"progress/step": 3.0, "total_steps": 10.0})),
        FakeRun(Info("b", "FINISHED"), Data({"progress/step": 10.0, "total_steps": 10.0})),
        FakeRun(Info("c", "RUNNING"), Data({})),
    ]
    assert running_steps(runs) == {"a": (3, 10), "c": (0, 0)}
