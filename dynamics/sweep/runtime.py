"""Starting or joining Ray, with the environment the offline default needs.

Locally (no RAY_ADDRESS) we start an embedded cluster bound to 127.0.0.1 with the Hugging Face hub off; on a
cluster (`ray job submit`) we join it and leave networking to the cluster.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# Workers inherit these through the job's runtime_env, locally and on a cluster.
_WORKER_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",  # trial end is noticed in 0.5 s instead of 2 s
}
_OFFLINE_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every node on 127.0.0.1, not the machine's interface
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    # On a busy 2-core laptop two trials' workers import torch, transformers and DeepSpeed at once, which
    # took over Ray Train's 60 s default (the controller then restarts the group, losing a minute each time).
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "300",
}


def is_local() -> bool:
    """True when no cluster address is given, i.e. the sweep starts its own embedded Ray."""
    return not os.environ.get("RAY_ADDRESS")


def prepare_environment(use_gpu: bool) -> dict[str, str]:
    """Set the driver's environment before Ray starts; return the env vars that workers must get too."""
    env = dict(_WORKER_ENV)
    if is_local():
        env.update(_OFFLINE_ENV)
    if not use_gpu:
        env["DS_ACCELERATOR"] = "cpu"  # DeepSpeed otherwise looks for CUDA and fails on CPU workers
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in env}


def start_ray(worker_env: dict[str, str], num_cpus: int | None = None) -> bool:
    """Join the cluster in RAY_ADDRESS, or start an embedded one on 127.0.0.1 with `num_cpus` (the count the
    preflight checked the sweep's resources against); True when this call started a cluster."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": worker_env}
    if is_local():
        # Workers' output stays in their log files: streamed, every worker's traceback and Ray's own shutdown
        # noise would bury the one line per failed trial that names its error file.
        context = ray.init(include_dashboard=False, runtime_env=runtime_env, log_to_driver=False, num_cpus=num_cpus)
        log.info("Ray worker logs: %s", Path(context.address_info["session_dir"]) / "logs")
        return True
    ray.init(runtime_env=runtime_env)
    return False
