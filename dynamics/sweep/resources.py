"""What one trial and the embedding pool ask Ray for, and whether the machine can ever give it.

A Ray resource request that no node can satisfy waits forever ("Requesting resources: {'CPU': 1.0} * 2" on a
2-core laptop). Locally we know the machine before Ray starts, so a shape that cannot fit is an error naming
the resources, and a `scaling.cpus_per_worker` the user left unset is fitted to the machine instead.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from dynamics.config import ScalingConfig, SweepConfig

log = logging.getLogger(__name__)

TRIAL_DRIVER_CPU = 0.01  # the Tune function that drives a trial's TorchTrainer; it only waits on the workers
CPU_STEP = 0.05  # fitted per-worker CPUs are a multiple of this, so the figure reads plainly


@dataclass(frozen=True)
class Capacity:
    """Logical resources of the cluster a sweep runs on (locally: this machine)."""

    cpus: float
    gpus: int


def _cgroup_cpu_limit() -> float | None:
    """The CPU quota of this process's cgroup (containers), if one is set."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def machine_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a container quota (as Ray itself counts)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(available, math.floor(limit)) if limit else available)


def local_capacity(needs_gpu: bool) -> Capacity:
    """This machine's CPUs and (only when the config asks for GPUs, since it imports torch) its GPUs."""
    gpus = 0
    if needs_gpu:
        import torch

        gpus = torch.cuda.device_count()
    return Capacity(float(machine_cpus()), gpus)


def needs_gpu(config: SweepConfig) -> bool:
    models_use_gpu = any(config.scaling_for(key).use_gpu for key in config.grid.model)
    return config.scaling.use_gpu or models_use_gpu or config.arrange.gpus_per_actor > 0


def trial_cpus(scaling: ScalingConfig) -> float:
    """CPUs one trial holds while it trains: its workers and the Tune function driving them."""
    return TRIAL_DRIVER_CPU + scaling.num_workers * scaling.cpus_per_worker


def _fitted_by_default(config: SweepConfig) -> list[ScalingConfig]:
    """The scaling of each model whose CPUs per worker come from the shared default (set nowhere)."""
    scalings = []
    for key in config.grid.model:
        overrides = config.models[key].scaling
        if overrides is None or overrides.cpus_per_worker is None:
            scalings.append(config.scaling_for(key))
    return scalings


def grid_size(config: SweepConfig) -> int:
    """Trials in the grid (before seed repeats are dropped: an upper bound on what runs)."""
    return len(config.grid.raw_points())


def wanted_at_once(config: SweepConfig) -> int:
    """Trials the sweep means to run at once: `scaling.max_concurrent_trials`, at most the grid's size."""
    return max(1, min(config.scaling.max_concurrent_trials, grid_size(config)))


def _widest_model(config: SweepConfig) -> str | None:
    """The grid's model whose trial holds the most CPUs (None: a grid without models)."""
    return max(config.grid.model, key=lambda key: trial_cpus(config.scaling_for(key)), default=None)


def trials_at_once(config: SweepConfig, capacity: Capacity) -> int:
    """Trials of the grid's widest shape that `capacity`'s CPUs hold at the same time (0: not even one)."""
    widest = _widest_model(config)
    if widest is None:
        return wanted_at_once(config)
    return math.floor(capacity.cpus / trial_cpus(config.scaling_for(widest)) + 1e-9)


def fit_to_capacity(config: SweepConfig, capacity: Capacity) -> SweepConfig:
    """`config` with `scaling.cpus_per_worker`, when the user left it unset, lowered so that
    `scaling.max_concurrent_trials` trials fit at once (Ray would otherwise queue the second trial's workers
    behind the first: a sweep that looks concurrent and runs one trial at a time)."""
    scaling = config.scaling
    fitted = _fitted_by_default(config)
    if "cpus_per_worker" in scaling.model_fields_set or not fitted:
        return config
    workers = max(model_scaling.num_workers for model_scaling in fitted)
    at_once = wanted_at_once(config)
    if at_once * (TRIAL_DRIVER_CPU + workers * scaling.cpus_per_worker) <= capacity.cpus:
        return config
    per_worker = math.floor((capacity.cpus / at_once - TRIAL_DRIVER_CPU) / workers / CPU_STEP) * CPU_STEP
    if per_worker < CPU_STEP:
        return config  # cannot fit at all: resource_problems names it
    per_worker = round(per_worker, 2)
    log.info(
        "scaling.cpus_per_worker not set: %.2f CPUs per worker, so %d trial(s) of %d workers fit this machine's "
        "%g CPUs at once",
        per_worker,
        at_once,
        workers,
        capacity.cpus,
    )
    return config.model_copy(update={"scaling": scaling.model_copy(update={"cpus_per_worker": per_worker})})


def concurrency_shortfall(config: SweepConfig, capacity: Capacity) -> str | None:
    """A warning when fewer trials fit at once than `scaling.max_concurrent_trials` asks for, naming the
    figures and the fix; None when they fit."""
    wanted, fits = wanted_at_once(config), trials_at_once(config, capacity)
    if fits >= wanted or fits == 0:  # 0: resource_problems reports the trial that cannot fit at all
        return None
    widest = _widest_model(config)
    scaling = config.scaling_for(widest)
    return (
        f"scaling.max_concurrent_trials is {wanted}, but {capacity.cpus:g} CPUs hold only {fits} trial(s) of "
        f"model '{widest}' at once ({scaling.num_workers} workers × {scaling.cpus_per_worker:g} CPUs + "
        f"{TRIAL_DRIVER_CPU:g} for the trial's driver = {trial_cpus(scaling):g}); the others wait for CPUs: "
        f"lower scaling.cpus_per_worker (or leave it unset to have it fitted)"
    )


def _trial_problems(key: str, scaling: ScalingConfig, capacity: Capacity) -> list[str]:
    need = trial_cpus(scaling)
    problems = []
    if need > capacity.cpus:
        problems.append(
            f"key '{key}': one trial needs {need:g} CPUs (scaling.num_workers {scaling.num_workers} × "
            f"scaling.cpus_per_worker {scaling.cpus_per_worker:g} + {TRIAL_DRIVER_CPU:g} for its driver) but "
            f"this machine has {capacity.cpus:g}: lower scaling.num_workers or scaling.cpus_per_worker"
        )
    gpus = scaling.num_workers * scaling.gpus_per_worker
    if scaling.use_gpu and gpus > capacity.gpus:
        problems.append(
            f"key '{key}.use_gpu': one trial needs {gpus:g} GPUs (scaling.num_workers {scaling.num_workers} × "
            f"scaling.gpus_per_worker {scaling.gpus_per_worker:g}) but this machine has {capacity.gpus}"
        )
    return problems


def resource_problems(config: SweepConfig, capacity: Capacity) -> list[str]:
    """One line per request that `capacity` can never satisfy, naming the keys and the figures."""
    problems = _trial_problems("scaling", config.scaling, capacity) if not config.grid.model else []
    seen: list[ScalingConfig] = []
    for model_key in config.grid.model:
        scaling = config.scaling_for(model_key)
        if scaling in seen:
            continue
        seen.append(scaling)
        where = f"models.{model_key}.scaling" if config.models[model_key].scaling else "scaling"
        problems += _trial_problems(where, scaling, capacity)
    arrange = config.arrange
    actor_cpus = arrange.num_actors * arrange.cpus_per_actor
    if actor_cpus > capacity.cpus:
        problems.append(
            f"key 'arrange': the embedding pool needs {actor_cpus:g} CPUs (arrange.num_actors "
            f"{arrange.num_actors} × arrange.cpus_per_actor {arrange.cpus_per_actor:g}) but this machine has "
            f"{capacity.cpus:g}"
        )
    actor_gpus = arrange.num_actors * arrange.gpus_per_actor
    if actor_gpus > capacity.gpus:
        problems.append(
            f"key 'arrange.gpus_per_actor': the embedding pool needs {actor_gpus:g} GPUs but this machine "
            f"has {capacity.gpus}"
        )
    return problems


def known_capacity(config: SweepConfig, local: bool) -> Capacity | None:
    """The capacity to check a sweep against before its Ray work: a running Ray's resources, this machine's
    when Ray will start here, None when joining a cluster (its autoscaler may still add nodes)."""
    import ray

    if ray.is_initialized():
        resources = ray.cluster_resources()
        return Capacity(float(resources.get("CPU", 0.0)), int(resources.get("GPU", 0)))
    return local_capacity(needs_gpu(config)) if local else None
