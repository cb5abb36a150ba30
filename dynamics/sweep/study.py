"""A study prepared on the driver: names checked, data loaded and split, volumes fixed, models built.

Everything here runs before Ray starts, so a malformed study fails in seconds with a message, not after
minutes of cluster work. On a cluster the driver joins it first (`check_config`, then `start_ray`), since
refusing single-host stores needs its node count; joining is cheap and starts no work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from dynamics.config import ConfigError, SweepConfig, TrialFactors
from dynamics.data.problems import DataError
from dynamics.data.schema import split_of
from dynamics.data.sources import load_data, load_eval_source
from dynamics.models import ModelSource, materialise
from dynamics.models.reward import materialise_reward_model
from dynamics.sweep.encoding_checks import check_pretrained_tokenizers, truncation_report
from dynamics.sweep.plan import check_names, resolve_volumes, trial_table
from dynamics.sweep.preflight import PreflightError, preflight
from dynamics.sweep.resources import fit_to_capacity, known_capacity, resource_problems
from dynamics.sweep.runtime import alive_nodes, is_local
from dynamics.tracking import resolve_tracking_uri

log = logging.getLogger(__name__)


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
    num_cpus: int | None  # CPUs of the embedded Ray to start (what the resources were checked against)
    truncation: tuple[str, ...] = ()  # per model, test tasks whose items truncation cuts or drops
    reward_model: str | None = None  # evaluate.reward_model as workers load it (a folder or a hub name)
    eval_sets: tuple[tuple[str, pa.Table], ...] = ()  # evaluate.sets: (name, its rows, split 'test'), in order


def check_config(config: SweepConfig, origin: str = "<config>") -> None:
    """The checks that need neither data nor Ray: every name, and shared storage set on a cluster (so a
    config error fails before the driver joins one)."""
    check_names(config, origin)
    if not is_local() and config.storage_path is None:
        raise ConfigError(
            f"{origin}: key 'storage_path': on a cluster (RAY_ADDRESS is set) Ray Train needs shared storage "
            "that every node sees: set storage_path to s3://…, gs://… or an NFS mount"
        )


def check_evaluation_subsets(config: SweepConfig, test: pa.Table, origin: str = "<config>") -> None:
    """ConfigError when a generation group's subset cannot hold one item of every test task (a task left out of
    it would vanish from that group's macro averages)."""
    for index, group in enumerate(config.evaluate.in_loop):
        _check_subset(test, group.subset, f"evaluate.in_loop[{index}].subset", "test", origin)


def _check_subset(rows: pa.Table, subset: int | None, key: str, label: str, origin: str) -> None:
    """ConfigError when `subset` items cannot hold one of each task of `rows` (the `label` set)."""
    tasks = len(set(rows.column("task").to_pylist()))
    if subset is not None and subset < tasks:
        raise ConfigError(
            f"{origin}: key '{key}': {subset} items cannot hold one of each of the {tasks} {label} tasks: set at "
            f"least {tasks}, or null for the whole {label} set"
        )


def load_eval_sets(
    config: SweepConfig, table: pa.Table, seed: int, report_dir: Path | None, origin: str = "<config>"
) -> tuple[tuple[str, pa.Table], ...]:
    """(name, rows) of every `evaluate.sets` entry: the loaded data's valid split or another source's rows. An
    empty set fails here, before any Ray work, naming its key and name (its curves would be missing, not zero)."""
    loaded = []
    for index, entry in enumerate(config.evaluate.sets):
        key = f"evaluate.sets[{index}]"
        if entry.split == "valid":
            rows = split_of(table, "valid")
            if rows.num_rows == 0:
                splits = sorted(set(table.column("split").to_pylist()))
                raise ConfigError(
                    f"{origin}: key '{key}.split': evaluation set {entry.name!r} is empty: data source "
                    f"'{config.data.source}' loaded no 'valid' rows (its splits: {', '.join(splits)})"
                )
        else:
            assert entry.source is not None  # EvalSetConfig holds exactly one of split and source
            try:
                rows = load_eval_source(entry.source, f"{key}.source", seed, config.data.lenient, report_dir)
            except DataError as error:
                raise DataError(f"{origin}: evaluation set {entry.name!r}: {error}") from None
        _check_subset(rows, entry.subset, f"{key}.subset", f"evaluation set {entry.name!r}", origin)
        loaded.append((entry.name, rows))
    return tuple(loaded)


def prepare(config: SweepConfig, origin: str = "<config>") -> PreparedStudy:
    """Check every name, load the data, fix the volumes and the trial table, build the models; on a cluster,
    after joining it (`start_ray`)."""
    check_config(config, origin)
    workdir = Path(config.workdir).resolve()
    tracking_uri = resolve_tracking_uri(config.tracking.uri, workdir)
    storage_path = config.storage_path or str(workdir / "ray_results")
    nodes = None if is_local() else alive_nodes()  # single-host stores are refused on more than one
    preflight(config, workdir, tracking_uri, storage_path, origin, nodes)
    capacity = known_capacity(config, is_local())
    if capacity is not None:
        config = fit_to_capacity(config, capacity)
        problems = resource_problems(config, capacity)
        if problems:
            raise PreflightError("\n".join(f"{origin}: {problem}" for problem in problems))
    tokenizers = check_pretrained_tokenizers(config, origin)  # a tokenizer unfit for its template fails before the data
    loaded = load_data(
        config.data, seed=min(config.grid.seed), cache_dir=workdir / "cache" / "data", report_dir=workdir
    )
    train_pool, test = split_of(loaded.table, "train"), split_of(loaded.table, "test")
    config = resolve_volumes(config, train_pool.num_rows)
    check_evaluation_subsets(config, test, origin)
    eval_sets = load_eval_sets(config, loaded.table, min(config.grid.seed), workdir, origin)
    models = {key: materialise(key, config.models[key], workdir) for key in config.grid.model}
    truncation = tuple(truncation_report(config, models, test, tokenizers, origin))
    for name, rows in eval_sets:  # a named set thinned by truncation is reported as loudly as the test split
        truncation += tuple(truncation_report(config, models, rows, tokenizers, origin, f"evaluation set {name!r}"))
    for line in truncation:
        log.warning("%s", line)
    num_cpus = int(capacity.cpus) if capacity is not None and is_local() else None
    reward = config.evaluate.reward_model
    reward_model = None if reward is None else materialise_reward_model(reward, workdir)
    return PreparedStudy(
        config,
        workdir,
        train_pool,
        test,
        models,
        tracking_uri,
        storage_path,
        trial_table(config),
        num_cpus,
        truncation,
        reward_model,
        eval_sets,
    )
