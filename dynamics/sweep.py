"""The study driver: load → arrange → train (Tune grid of Train trials) → track → plot.

All validation (config, data splits, volumes, orderings, models) happens before Ray starts, so a malformed
study fails in a second with a message, not after minutes of cluster work.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from dynamics.arrange.arrangers import get_arranger
from dynamics.config import ConfigError, SweepConfig
from dynamics.data.schema import split_of
from dynamics.data.sources import DataError, load_data
from dynamics.models import ModelSource, materialise
from dynamics.runtime import is_local, prepare_environment, start_ray
from dynamics.tracking import default_tracking_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedStudy:
    """Everything validated and built on the driver before any Ray work."""

    config: SweepConfig
    workdir: Path
    train_pool: pa.Table
    test: pa.Table
    models: dict[str, ModelSource]
    tracking_uri: str
    storage_path: str


@dataclass(frozen=True)
class SweepResult:
    parent_run_id: str
    tracking_uri: str
    num_trials: int
    failed_trials: int
    wall_s: float
    summary: dict[str, Any]


def prepare(config: SweepConfig) -> PreparedStudy:
    """Validate what the config points at (data, volumes, orderings, storage) and build the models."""
    workdir = Path(config.workdir).resolve()
    for name in config.grid.permutation:
        get_arranger(name)
    loaded = load_data(
        config.data, seed=min(config.grid.seed), cache_dir=workdir / "cache" / "data", report_dir=workdir
    )
    table = loaded.table
    train_pool, test = split_of(table, "train"), split_of(table, "test")
    config = _with_resolved_volumes(config, train_pool.num_rows)
    if not is_local() and config.storage_path is None:
        raise ConfigError(
            "storage_path: on a cluster (RAY_ADDRESS is set) Ray Train needs shared storage that every node "
            "sees: set storage_path to s3://…, gs://… or an NFS mount"
        )
    storage_path = config.storage_path or str(workdir / "ray_results")
    workdir.mkdir(parents=True, exist_ok=True)
    models = {key: materialise(key, config.models[key], workdir) for key in config.grid.model}
    tracking_uri = config.tracking.uri or default_tracking_uri(workdir)
    return PreparedStudy(config, workdir, train_pool, test, models, tracking_uri, storage_path)


def _with_resolved_volumes(config: SweepConfig, pool_size: int) -> SweepConfig:
    """'all' becomes the pool size; a volume larger than the pool is an error naming both numbers."""
    volumes = [pool_size if volume == "all" else volume for volume in config.grid.volume]
    too_large = [volume for volume in volumes if volume > pool_size]
    if too_large:
        raise DataError(
            f"grid.volume: {max(too_large)} exceeds the {pool_size} training examples of data source "
            f"'{config.data.source}'"
        )
    grid = config.grid.model_copy(update={"volume": sorted(set(volumes), key=volumes.index)})
    return config.model_copy(update={"grid": grid})


def run_sweep(config: SweepConfig) -> SweepResult:
    """Run the whole study and return where its results are."""
    started = time.perf_counter()
    worker_env = prepare_environment(config.scaling.use_gpu)
    study = prepare(config)
    config = study.config  # volumes resolved against the loaded pool
    from mlflow.tracking import MlflowClient
    from ray import tune

    from dynamics.arrange.artifact import read_derived
    from dynamics.arrange.stage import arrange_grid
    from dynamics.report import report_sweep
    from dynamics.tracking import start_run
    from dynamics.train.trial import SweepInputs, arrangement_key, run_trial

    start_ray(worker_env)
    arrangements = arrange_grid(study.train_pool, study.test, config, study.workdir)
    client = MlflowClient(study.tracking_uri)
    grid_sizes = {factor: len(values) for factor, values in config.grid.model_dump().items()}
    parent_run_id = start_run(
        client,
        config.tracking.experiment,
        config.name,
        params={f"grid.{k}": json.dumps(v) for k, v in config.grid.model_dump().items()}
        | {"num_trials": math.prod(grid_sizes.values()), "data.source": config.data.source},
    )
    config_path = study.workdir / "sweep_config.json"
    config_path.write_text(json.dumps(config.model_dump(), indent=2) + "\n")
    client.log_artifact(parent_run_id, str(config_path))
    for ref in arrangements.values():
        client.log_artifacts(parent_run_id, ref.folder, artifact_path=f"arrangements/{Path(ref.folder).name}")

    test = study.test
    shared = SweepInputs(
        config=config.model_dump(),
        train_messages=dict(
            zip(study.train_pool.column("id").to_pylist(), study.train_pool.column("messages").to_pylist(), strict=True)
        ),
        test_ids=test.column("id").to_pylist(),
        test_tasks=test.column("task").to_pylist(),
        test_categories=test.column("category").to_pylist(),
        test_messages=test.column("messages").to_pylist(),
        arrangements={arrangement_key(*key): ref for key, ref in arrangements.items()},
        orders={arrangement_key(*key): Path(ref.order_path).read_bytes() for key, ref in arrangements.items()},
        arrangement_stats={arrangement_key(*key): read_derived(ref) for key, ref in arrangements.items()},
        models=study.models,
        tracking_uri=study.tracking_uri,
        parent_run_id=parent_run_id,
        storage_path=study.storage_path,
    )
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(run_trial, shared=shared), {"CPU": 0.01}),
        param_space={factor: tune.grid_search(list(values)) for factor, values in config.grid.model_dump().items()},
        tune_config=tune.TuneConfig(max_concurrent_trials=config.scaling.max_concurrent_trials),
        run_config=tune.RunConfig(name=f"{config.name}-{parent_run_id[:8]}", storage_path=study.storage_path),
    )
    results = tuner.fit()
    failed = sum(1 for result in results if result.error is not None)
    summary = report_sweep(client, parent_run_id, study.workdir / "report" / parent_run_id)
    wall_s = time.perf_counter() - started
    client.log_metric(parent_run_id, "sweep_wall_s", wall_s)
    client.set_terminated(parent_run_id, status="FINISHED" if failed == 0 else "FAILED")
    return SweepResult(parent_run_id, study.tracking_uri, len(results), failed, wall_s, summary)

