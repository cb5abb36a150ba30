"""A study prepared on the driver: names checked, data loaded and split, volumes fixed, models built.

Everything here runs before Ray starts, so a malformed study fails in seconds with a message, not after
minutes of cluster work. On a cluster the driver joins it first (`check_config`, then `start_ray`), since
refusing single-host stores needs its node count; joining is cheap and starts no work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from dynamics.arrange.artifact import ArrangementKey, ArrangementRef
from dynamics.config import ConfigError, SweepConfig, TrialFactors
from dynamics.data.problems import DataError
from dynamics.data.schema import split_of
from dynamics.data.sources import load_data, load_eval_source
from dynamics.models import ModelSource, materialise
from dynamics.models.reward import materialise_reward_model
from dynamics.sweep.encoding_checks import check_pretrained_tokenizers, truncation_report
from dynamics.sweep.plan import check_names, resolve_volumes, trial_table
from dynamics.sweep.preflight import PreflightError, preflight
from dynamics.sweep.resources import concurrency_shortfall, fit_to_capacity, known_capacity, resource_problems
from dynamics.sweep.runtime import alive_nodes, is_local
from dynamics.tracking import resolve_tracking_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replicate:
    """The data of one grid seed: its own sample of the training pool, the test split and the named sets (a
    source that samples or generates by seed gives each seed other items; one that does not, the same)."""

    train_pool: pa.Table
    test: pa.Table
    eval_sets: tuple[tuple[str, pa.Table], ...] = ()


@dataclass(frozen=True)
class PreparedStudy:
    """Everything validated and built on the driver before any Ray work."""

    config: SweepConfig  # volumes resolved against the loaded pool
    workdir: Path
    train_pool: pa.Table  # the first seed's (as `replicates`)
    test: pa.Table
    models: dict[str, ModelSource]
    tracking_uri: str
    storage_path: str
    trials: list[TrialFactors]
    num_cpus: int | None  # CPUs of the embedded Ray to start (what the resources were checked against)
    truncation: tuple[str, ...] = ()  # per model, test tasks whose items truncation cuts or drops
    reward_model: str | None = None  # evaluate.reward_model as workers load it (a folder or a hub name)
    eval_sets: tuple[tuple[str, pa.Table], ...] = ()  # evaluate.sets: (name, its rows, split 'test'), in order
    replicates: dict[int, Replicate] | None = None  # grid seed → its data; every seed of grid.seed

    def replicate(self, seed: int) -> Replicate:
        """The data the trials of grid seed `seed` train and evaluate on."""
        if self.replicates is None:
            return Replicate(self.train_pool, self.test, self.eval_sets)
        return self.replicates[seed]


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
        shortfall = concurrency_shortfall(config, capacity)
        if shortfall:
            log.warning("%s", shortfall)
        problems = resource_problems(config, capacity)
        if problems:
            raise PreflightError("\n".join(f"{origin}: {problem}" for problem in problems))
    tokenizers = check_pretrained_tokenizers(config, origin)  # a tokenizer unfit for its template fails before the data
    replicates = _shared({seed: _load_replicate(config, seed, workdir, origin) for seed in config.grid.seed})
    first = replicates[config.grid.seed[0]]
    # 'all' is the smallest seed's pool (per-task sampling may leave seeds different counts): every seed trains it
    pools = [replicate.train_pool for replicate in _distinct_pools(replicates)]
    config = resolve_volumes(config, min(pool.num_rows for pool in pools), pools)
    models = {key: materialise(key, config.models[key], workdir) for key in config.grid.model}
    truncation: tuple[str, ...] = ()
    for seed, replicate in _distinct(replicates).items():
        label = "" if len(replicates) == 1 else f" (data of seed {seed})"
        sets = [("", replicate.test)] + [(f"evaluation set {name!r}", rows) for name, rows in replicate.eval_sets]
        for set_label, rows in sets:  # a named set thinned by truncation is reported as loudly as the test split
            lines = truncation_report(config, models, rows, tokenizers, origin, set_label or "test")
            truncation += tuple(line + label for line in lines if line + label not in truncation)
    for line in truncation:
        log.warning("%s", line)
    num_cpus = int(capacity.cpus) if capacity is not None and is_local() else None
    reward = config.evaluate.reward_model
    reward_model = None if reward is None else materialise_reward_model(reward, workdir)
    return PreparedStudy(
        config,
        workdir,
        first.train_pool,
        first.test,
        models,
        tracking_uri,
        storage_path,
        trial_table(config),
        num_cpus,
        truncation,
        reward_model,
        first.eval_sets,
        replicates,
    )


def _load_replicate(config: SweepConfig, seed: int, workdir: Path, origin: str) -> Replicate:
    """One seed's data, loaded (or read from the cache) and checked: a seed is a full replicate, down to which
    items a sampling source draws."""
    loaded = load_data(config.data, seed=seed, cache_dir=workdir / "cache" / "data", report_dir=workdir)
    train_pool, test = split_of(loaded.table, "train"), split_of(loaded.table, "test")
    check_evaluation_subsets(config, test, origin)
    eval_sets = load_eval_sets(config, loaded.table, seed, workdir, origin)
    return Replicate(train_pool, test, eval_sets)


def _shared(replicates: dict[int, Replicate]) -> dict[int, Replicate]:
    """The same replicate object for seeds whose data are the same bytes (a source that ignores the seed): held,
    shipped and arranged once."""
    from dynamics.io import table_digest

    by_digest: dict[tuple[str, ...], Replicate] = {}
    shared = {}
    for seed, replicate in replicates.items():
        tables = (replicate.train_pool, replicate.test, *(rows for _, rows in replicate.eval_sets))
        shared[seed] = by_digest.setdefault(tuple(table_digest(table) for table in tables), replicate)
    return shared


def build_study_arrangements(
    study: PreparedStudy, wanted: Sequence[ArrangementKey]
) -> dict[ArrangementKey, ArrangementRef]:
    """Every arrangement in `wanted`, each computed on its own seed's data (or read from the cache)."""
    from dynamics.arrange.stage import build_arrangements

    refs: dict[ArrangementKey, ArrangementRef] = {}
    for seed in dict.fromkeys(key.seed for key in wanted):
        replicate = study.replicate(seed)
        keys = [key for key in wanted if key.seed == seed]
        refs |= build_arrangements(replicate.train_pool, replicate.test, study.config.arrange, keys, study.workdir)
    return {key: refs[key] for key in wanted}


def _distinct(replicates: dict[int, Replicate]) -> dict[int, Replicate]:
    """The replicates whose test data differ (the first seed of each): what a truncation report must cover."""
    from dynamics.io import table_digest

    seen: dict[tuple[str, ...], int] = {}
    for seed, replicate in replicates.items():
        digests = (table_digest(replicate.test), *(table_digest(rows) for _, rows in replicate.eval_sets))
        seen.setdefault(digests, seed)
    return {seed: replicates[seed] for seed in seen.values()}


def _distinct_pools(replicates: dict[int, Replicate]) -> list[Replicate]:
    """Each distinct replicate once (seeds whose data are the same bytes share one object, `_shared`)."""
    return list({id(replicate): replicate for replicate in replicates.values()}.values())
