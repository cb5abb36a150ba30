"""Starting or joining Ray, with the environment the sweep's workers need.

Locally (no RAY_ADDRESS) we start an embedded cluster bound to 127.0.0.1, with the Hugging Face hub off when
nothing the config names must come from it; on a cluster (`ray job submit`) we join it and leave networking to
the cluster. A hub token in the driver's environment (HF_TOKEN) goes to the workers and is never logged: not as a
runtime_env env var, which Ray's runtime-env agent writes to `runtime_env_agent.log` on every node (measured,
Ray 2.60), but through a worker setup hook, whose closure only the GCS holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dynamics.config import SweepConfig
from dynamics.sweep.preflight import needs_hub
from dynamics.sweep.resources import needs_gpu

log = logging.getLogger(__name__)

# Workers inherit these through the job's runtime_env, locally and on a cluster.
_WORKER_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",  # trial end is noticed in 0.5 s instead of 2 s
    # transformers 5 swaps layers (LLaMA's rotary embedding, …) for kernels downloaded from the hub whenever a
    # CUDA device is present: code fetched at run time and pinned by no one, and fatal offline (on an H200 every
    # trial failed at its first engine.train()). Set USE_HUB_KERNELS=1 to opt in.
    "USE_HUB_KERNELS": "0",
}
_LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every node on 127.0.0.1, not the machine's interface
    "RAY_USAGE_STATS_ENABLED": "0",
    # On a busy 2-core laptop two trials' workers import torch, transformers and DeepSpeed at once, which
    # took over Ray Train's 60 s default (the controller then restarts the group, losing a minute each time).
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "300",
}
# The driver's own: Tune's console output off (its tables repeat every trial's config every 30 s and its banner
# prints even at verbose=0); the sweep prints one progress view instead (dynamics.sweep.progress_view).
_DRIVER_ENV = {"RAY_AIR_NEW_OUTPUT": "0"}
# Only where nothing must be downloaded: then a missing file fails at once instead of after network timeouts.
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# Credentials for gated or private hub repos: passed on as they are, never written to a log.
HUB_TOKENS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def is_local() -> bool:
    """True when no cluster address is given, i.e. the sweep starts its own embedded Ray."""
    return not os.environ.get("RAY_ADDRESS")


def prepare_environment(config: SweepConfig) -> dict[str, str]:
    """Set the driver's environment before Ray starts; return the env vars that workers must get too (a hub
    token among them when the driver has one). A value already set in the environment wins over ours."""
    env = dict(_WORKER_ENV)
    if is_local():
        env.update(_LOCAL_ENV)
        hub_keys = needs_hub(config)
        if hub_keys:
            log.info("Hugging Face hub left on: %s name hub repos", ", ".join(hub_keys))
        else:
            env.update(_OFFLINE_ENV)
    if not needs_gpu(config):
        env["DS_ACCELERATOR"] = "cpu"  # DeepSpeed otherwise looks for CUDA and fails on CPU workers
    for key, value in (env | _DRIVER_ENV).items():
        os.environ.setdefault(key, value)
    worker_env = {key: os.environ[key] for key in env}
    return worker_env | {key: os.environ[key] for key in HUB_TOKENS if os.environ.get(key)}


def alive_nodes() -> int:
    """Alive nodes of the cluster this process has joined (an autoscaler may add more later)."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("join the cluster (start_ray) before counting its nodes")
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def _exporter(values: dict[str, str]) -> Callable[[], None]:
    def export_hub_tokens() -> None:  # a closure: pickled by value, so workers need not import dynamics
        os.environ.update(values)

    return export_hub_tokens


def job_runtime_env(worker_env: dict[str, str]) -> dict[str, Any]:
    """The job's runtime_env: every worker env var as an env var, except the hub tokens, which a setup hook
    sets in each worker process so that no Ray log shows them."""
    tokens = {key: value for key, value in worker_env.items() if key in HUB_TOKENS}
    runtime_env: dict[str, Any] = {"env_vars": {k: v for k, v in worker_env.items() if k not in HUB_TOKENS}}
    if tokens:
        runtime_env["worker_process_setup_hook"] = _exporter(tokens)
    return runtime_env


def _quiet_ray_data() -> None:
    """Ray Data's progress report (a block of lines every 10 s per dataset) and INFO lines off the console: they
    stay in the session's `logs/ray-data`, and the sweep logs each embedding pass it runs."""
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def start_ray(worker_env: dict[str, str], num_cpus: int | None = None) -> bool:
    """Join the cluster in RAY_ADDRESS, or start an embedded one on 127.0.0.1 with `num_cpus` (the count the
    preflight checked the sweep's resources against); True when this call started a cluster."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = job_runtime_env(worker_env)
    _quiet_ray_data()
    if is_local():
        # Workers' output stays in their log files: streamed, every worker's traceback and Ray's own shutdown
        # noise would bury the one line per failed trial that names its error file.
        context = ray.init(include_dashboard=False, runtime_env=runtime_env, log_to_driver=False, num_cpus=num_cpus)
        log.info("Ray worker logs: %s", Path(context.address_info["session_dir"]) / "logs")
        return True
    ray.init(runtime_env=runtime_env)
    return False
