"""The study driver: plan → load → arrange → train (a Tune grid of Train trials) → track → report.

All validation (names, data splits, volumes, models) happens before Ray starts, so a malformed study fails
in a second with a message, not after minutes of cluster work. The sweep's MLflow run never stays RUNNING:
it ends FINISHED, FAILED (an error, or any failed trial) or KILLED (Ctrl-C).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynamics.arrange.artifact import read_derived
from dynamics.config import SweepConfig, TrialFactors
from dynamics.io import strings_digest, table_from_parquet_bytes
from dynamics.report import report_sweep
from dynamics.sweep.interrupts import (
    SweepInterrupted,
    kill_unfinished_trials,
    second_interrupt_forces,
    stop_ray,
    threads_now,
)
from dynamics.sweep.payload import ShippedArrangement, SweepPayload, shipped_replicates, trial_name
from dynamics.sweep.plan import arrangements_needed, seed_free_models, seed_repeats
from dynamics.sweep.preflight import PreflightError, writable_problem
from dynamics.sweep.resources import TRIAL_DRIVER_CPU
from dynamics.sweep.resume import CONFIG_ARTIFACT, existing_sweep, tune_experiment_name
from dynamics.sweep.runtime import is_local, prepare_environment, start_ray
from dynamics.sweep.study import build_study_arrangements, check_config, prepare
from dynamics.tracking import TrackedRun, child_runs, ends_on_error, start_sweep_run
from dynamics.train.trial import run_trial, trial_shape
from dynamics.workdir_lock import hold_workdir

log = logging.getLogger(__name__)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(error: BaseException) -> str:
    """The line a person needs from a trial's error: Ray wraps a worker's exception in the remote traceback,
    whose last line is the original "ValueError: …"."""
    lines = [line.strip() for line in _ANSI.sub("", str(error)).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", last) else f"{type(error).__name__}: {last}"


@dataclass(frozen=True)
class SweepResult:
    parent_run_id: str
    tracking_uri: str
    num_trials: int
    failed_trials: int
    wall_s: float
    summary: dict[str, Any] | None  # the report; None when no trial finished
    first_error: str | None = None  # of the first failed trial, for a one-line summary
    failures: tuple[str, ...] = ()  # one line per failed trial: its name, the cause, the file with the rest
    truncation: tuple[str, ...] = ()  # per model, test tasks whose items truncation cuts or drops


TRIAL_KEY = "trial"  # Tune's config holds the grid point under this key
SEED_REPEATS_ARTIFACT = "seed_repeats.json"


def factors_of(tune_config: dict[str, Any]) -> TrialFactors:
    """The grid point of a Tune trial's config (a sweep started before points were listed whole has the factors
    at the top level)."""
    return TrialFactors.model_validate(tune_config.get(TRIAL_KEY, tune_config))


def _seed_repeats(study, shipped: dict) -> dict[TrialFactors, TrialFactors]:
    """The trials a lower seed's trial already covers to the bit, each logged with the one it repeats."""
    digests = {
        key: strings_digest(table_from_parquet_bytes(s.order).column("id").to_pylist()) for key, s in shipped.items()
    }
    data = {seed: study.replicate(seed) for seed in study.config.grid.seed}
    repeats = seed_repeats(study.trials, data, digests, seed_free_models(study.config))
    for trial, original in repeats.items():
        log.warning(
            "trial %s not run: the seed changes nothing in it (same data, same order, a seed-free model); it is %s",
            trial_name(trial),
            trial_name(original),
        )
    return repeats


def tune_trial(factors: dict[str, Any], payload: SweepPayload) -> None:
    """The Tune function: one grid point, one trial, its final metrics reported to Tune."""
    from ray import tune

    started = time.time()
    metrics = run_trial(payload.trial(factors_of(factors)), started)
    tune.report(metrics | {"trial_wall_s": time.time() - started})


def progress_view(config: SweepConfig, sweep_run: TrackedRun, total: int) -> Any:
    """The sweep's progress view (a Tune callback) over `total` trials: running trials' steps read from its
    MLflow runs."""
    from dynamics.sweep.progress_view import SweepProgress, running_steps

    return SweepProgress(
        total=total,
        concurrency=config.scaling.max_concurrent_trials,
        steps=lambda: running_steps(child_runs(sweep_run)),
        name_of=lambda tune_config: trial_name(factors_of(tune_config)),
    )


def failure_line(result: Any) -> str:
    """'<trial>: <cause> (full error: <file>)' for a failed Tune result."""
    name = trial_name(factors_of(result.config))
    error_file = Path(result.path) / "error.txt" if result.path else None
    where = f" (full error: {error_file})" if error_file is not None and error_file.exists() else ""
    return f"{name}: {one_line(result.error)}{where}"


def run_sweep(config: SweepConfig, origin: str = "<config>", resume: bool = False) -> SweepResult:
    """Run the whole study (with `resume`: the trials of the sweep of this name that did not finish) and return
    where its results are; SweepInterrupted on Ctrl-C or SIGTERM."""
    workdir = Path(config.workdir).resolve()
    problem = writable_problem("workdir", workdir)  # before the lock, which creates its file there
    if problem:
        raise PreflightError(f"{origin}: {problem}")
    with second_interrupt_forces(), hold_workdir(workdir, f"sweep {config.name}"):
        return _run_sweep(config, origin, resume)


def _run_sweep(config: SweepConfig, origin: str, resume: bool) -> SweepResult:
    started = time.perf_counter()
    worker_env = prepare_environment(config)
    if not is_local():
        check_config(config, origin)  # a config error fails before joining
        start_ray(worker_env)  # cheap on a cluster, and prepare needs its node count
    study = prepare(config, origin)
    config = study.config  # volumes resolved against the loaded pool, scaling fitted to the machine
    existing = existing_sweep(config, study.tracking_uri, resume)  # refusals come before any Ray work
    for model_key in config.grid.model:
        log.info(
            "model %s: each trial %s",
            model_key,
            trial_shape(config.scaling_for(model_key), config.train_for(model_key)),
        )
    from ray import tune

    started_ray = False
    threads_before = threads_now()
    sweep_run: TrackedRun | None = None
    try:
        started_ray = start_ray(worker_env, study.num_cpus)
        threads_before = threads_now()
        grid = config.grid.described()
        if existing is None:
            sweep_run = start_sweep_run(
                study.tracking_uri,
                config.tracking.experiment,
                config.name,
                params={f"grid.{factor}": json.dumps(values) for factor, values in grid.items()}
                | {"num_trials": len(study.trials), "data.source": config.data.source},
            )
        else:
            sweep_run = TrackedRun(study.tracking_uri, existing.info.run_id).reopen()
            log.info("resuming sweep %s: run %s (was %s)", config.name, sweep_run.run_id, existing.info.status)
        with ends_on_error(sweep_run):
            if existing is None:
                config_path = study.workdir / CONFIG_ARTIFACT
                config_path.write_text(json.dumps(config.model_dump(), indent=2) + "\n")
                sweep_run.log_artifact(config_path)
                if study.truncation:
                    sweep_run.log_json("test_truncation.json", list(study.truncation))
            wanted = arrangements_needed(study.trials)
            refs = build_study_arrangements(study, wanted)
            if existing is None:  # a resumed sweep's are in its run already (the same bytes: from the cache)
                for ref in refs.values():
                    sweep_run.log_artifacts(ref.folder, artifact_path=f"arrangements/{Path(ref.folder).name}")
            shipped = {
                key: ShippedArrangement(ref, Path(ref.order_path).read_bytes(), read_derived(ref))
                for key, ref in refs.items()
            }
            repeats = _seed_repeats(study, shipped)
            if repeats and existing is None:
                sweep_run.log_json(SEED_REPEATS_ARTIFACT, {trial_name(t): trial_name(o) for t, o in repeats.items()})
            to_run = [trial for trial in study.trials if trial not in repeats]
            payload = SweepPayload(
                config=config,
                replicates=shipped_replicates(study),
                arrangements=shipped,
                models=study.models,
                reward_model=study.reward_model,
                sweep_run=sweep_run,
                storage_path=study.storage_path,
            )
            trainable = tune.with_resources(
                tune.with_parameters(tune_trial, payload=payload), {"CPU": TRIAL_DRIVER_CPU}
            )
            tune_name = tune_experiment_name(config, sweep_run.run_id)
            tune_path = f"{study.storage_path.rstrip('/')}/{tune_name}"
            if existing is not None and tune.Tuner.can_restore(tune_path):
                # Finished trials stay finished; errored and unfinished ones run again, from their checkpoints.
                tuner = tune.Tuner.restore(tune_path, trainable=trainable, resume_errored=True)
            else:
                tuner = tune.Tuner(
                    trainable,
                    # the grid's points less the seed repeats, each point whole: {"trial": {volume, model, …}}
                    param_space={TRIAL_KEY: tune.grid_search([trial.model_dump() for trial in to_run])},
                    tune_config=tune.TuneConfig(max_concurrent_trials=config.scaling.max_concurrent_trials),
                    # our progress view instead of Tune's tables (every trial's config, again every 30 s)
                    run_config=tune.RunConfig(
                        name=tune_name,
                        storage_path=study.storage_path,
                        verbose=0,
                        callbacks=[progress_view(config, sweep_run, len(to_run))],
                    ),
                )
            results = list(tuner.fit())
            failed = [result for result in results if result.error is not None]
            finished = sum(1 for result in results if result.error is None and "trial_wall_s" in result.metrics)
            summary = report_sweep(sweep_run, study.workdir / "report" / sweep_run.run_id) if finished else None
            wall_s = time.perf_counter() - started
            sweep_run.log_metric("sweep_wall_s", wall_s)
    except KeyboardInterrupt:
        log.warning("interrupted: stopping the sweep's Ray work (interrupt again to stop at once)")
        stop_ray(started_ray, threads_before)
        killed = kill_unfinished_trials(sweep_run) if sweep_run is not None else 0
        where = (
            f"run {sweep_run.run_id} and {killed} unfinished trial runs KILLED in {study.tracking_uri}"
            if sweep_run is not None
            else "no run had started"
        )
        raise SweepInterrupted(f"sweep interrupted: Ray work stopped; {where}") from None
    failures = tuple(failure_line(result) for result in failed)
    first_error = failures[0] if failures else None
    if failed:
        sweep_run.fail(f"{len(failed)} of {len(results)} trials failed; first: {first_error}")
    elif not finished:
        sweep_run.fail(f"none of the {len(results)} trials reported its final metrics")
    else:
        sweep_run.finish()
    return SweepResult(
        sweep_run.run_id,
        study.tracking_uri,
        len(results),
        len(failed),
        wall_s,
        summary,
        first_error,
        failures,
        study.truncation,
    )
