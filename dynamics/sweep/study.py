"""A study prepared on the driver: names checked, data loaded and split, volumes fixed, models built.

Everything here runs before Ray starts, so a malformed study fails in seconds with a message, not after
minutes of cluster work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from dynamics.config import ConfigError, SweepConfig, TrialFactors
from dynamics.data.schema import split_of
from dynamics.data.sources import load_data
from dynamics.models import ModelSource, materialise
from dynamics.sweep.plan import check_names, resolve_volumes, trial_table
from dynamics.sweep.runtime import is_local
from dynamics.tracking import default_tracking_uri


@dataclass(frozen=True)
class PreparedStudy:
    """Everything validated and built on the driver before any Ray work."""

    config: SweepConfig  # volumes resolved against the loaded pool
    workdir: Path
    train_pool: pa.Table
    test: pa.Table
    models: dict[str, ModelSource]
    tracking_uri: str
    storage_path: str
    trials: list[TrialFactors]


def prepare(config: SweepConfig, origin: str = "<config>") -> PreparedStudy:
    """Check every name, load the data, fix the volumes and the trial table, build the models."""
    check_names(config, origin)
    if not is_local() and config.storage_path is None:
        raise ConfigError(
            f"{origin}: key 'storage_path': on a cluster (RAY_ADDRESS is set) Ray Train needs shared storage "
            "that every node sees: set storage_path to s3://…, gs://… or an NFS mount"
        )
    workdir = Path(config.workdir).resolve()
    loaded = load_data(
        config.data, seed=min(config.grid.seed), cache_dir=workdir / "cache" / "data", report_dir=workdir
    )
    train_pool, test = split_of(loaded.table, "train"), split_of(loaded.table, "test")
    config = resolve_volumes(config, train_pool.num_rows)
    storage_path = config.storage_path or str(workdir / "ray_results")
    workdir.mkdir(parents=True, exist_ok=True)
    models = {key: materialise(key, config.models[key], workdir) for key in config.grid.model}
    tracking_uri = config.tracking.uri or default_tracking_uri(workdir)
    return PreparedStudy(config, workdir, train_pool, test, models, tracking_uri, storage_path, trial_table(config))
