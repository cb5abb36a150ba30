"""Planning a sweep: every name in the config resolved, volumes fixed, the trial table built — before any work.

`check_names` runs first and in milliseconds: an unknown data source, template or permutation (or options a
source does not take) is a `ConfigError` naming the file and the key, so a typo costs a second, not a start
of Ray. Volumes need the loaded pool (`'all'`, and a volume larger than the pool); the trial table is the
grid's points with volumes fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from dynamics.arrange.artifact import ArrangementKey, arrangement_key_of
from dynamics.arrange.orders import permutation
from dynamics.config import (
    FIXED_RECIPES,
    ConfigError,
    DataConfig,
    EvalSourceConfig,
    SweepConfig,
    TrialFactors,
    grid_recipe_name,
    named_recipe,
    sized_recipe,
)
from dynamics.data.formats import FORMATS
from dynamics.data.problems import DataError
from dynamics.data.recipes import available_rows, recipe_counts
from dynamics.evaluate.metrics import METRICS
from dynamics.registry import UnknownName
from dynamics.text.templates import TEMPLATES


def _source_problems(key: str, source: DataConfig | EvalSourceConfig) -> list[tuple[str, str]]:
    """(key, message) for an unknown source, a missing path, or options the source does not take."""
    try:
        data_format = FORMATS.get(source.source)
    except UnknownName as error:
        return [(f"{key}.source", str(error))]
    problems = []
    if data_format.reads_files and not source.path:
        problems.append((f"{key}.path", f"source '{source.source}' needs a local path or a hub dataset name"))
    try:
        data_format.check_options(source.options)
    except ValueError as error:
        problems.append((f"{key}.options", str(error)))
    return problems


def check_names(config: SweepConfig, origin: str = "<config>") -> None:
    """ConfigError listing every name of `config` that no registry knows, each with its file and key."""
    problems = _source_problems("data", config.data)
    if config.data.test_source is not None:
        problems += _source_problems("data.test_source", config.data.test_source)
    for index, entry in enumerate(config.evaluate.sets):
        if entry.source is not None:
            problems += _source_problems(f"evaluate.sets[{index}].source", entry.source)
    try:
        TEMPLATES.get(config.train.template)
    except UnknownName as error:
        problems.append(("train.template", str(error)))
    for name in config.grid.permutation:
        try:
            permutation(name)
        except ValueError as error:  # UnknownName included
            problems.append(("grid.permutation", str(error)))
    problems += _metric_problems(config)
    if problems:
        raise ConfigError("\n".join(f"{origin}: key '{key}': {message}" for key, message in problems))


def _metric_problems(config: SweepConfig) -> list[tuple[str, str]]:
    """(key, message) for an unregistered metric, a metric in the loop's generation groups that generates
    nothing, and a metric that needs a reward model none is set for (whether the reward model itself can be
    loaded here is the preflight's to say)."""
    listed: list[tuple[str, str, list[str]]] = [
        (f"evaluate.in_loop[{index}].metrics", "", group.metrics) for index, group in enumerate(config.evaluate.in_loop)
    ]
    listed += [
        (f"evaluate.sets[{index}].metrics", f"set {entry.name!r}: ", entry.metrics)
        for index, entry in enumerate(config.evaluate.sets)
    ]
    if config.evaluate.on_checkpoints is not None:
        listed.append(("evaluate.on_checkpoints.metrics", "", config.evaluate.on_checkpoints.metrics))
    problems = []
    for key, label, names in listed:
        for name in names:
            try:
                metric = METRICS.get(name)
            except UnknownName as error:
                problems.append((key, f"{label}{error}"))
                continue
            if key.startswith("evaluate.in_loop") and "generation" not in metric.needs:
                problems.append((key, f"metric {name!r} needs no generated reply"))
            if "reward_model" in metric.needs and config.evaluate.reward_model is None:
                message = f"metric {name!r} needs a reward model: set evaluate.reward_model (builtin or pretrained)"
                problems.append((key, f"{label}{message}"))
    return problems


def resolve_volumes(config: SweepConfig, pool_size: int, pools: Sequence[pa.Table] = ()) -> SweepConfig:
    """'all' becomes the pool size; a volume larger than the pool is an error naming both numbers. With grid
    recipes, every recipe is checked against each seed's training `pools` (a synthetic family without synthetic
    rows fails here, before any Ray work) and each fixed recipe gets its size: the smallest over the pools."""
    if config.grid.recipe is not None:
        return _resolve_recipes(config, pools)
    volumes = [pool_size if volume == "all" else volume for volume in config.grid.volume]
    too_large = [volume for volume in volumes if volume > pool_size]
    if too_large:
        raise DataError(
            f"grid.volume: {max(too_large)} exceeds the {pool_size} training examples of data source "
            f"'{config.data.source}'"
        )
    grid = config.grid.model_copy(update={"volume": sorted(set(volumes), key=volumes.index)})
    return config.model_copy(update={"grid": grid})


def _resolve_recipes(config: SweepConfig, pools: Sequence[pa.Table]) -> SweepConfig:
    available = [available_rows(pool) for pool in pools]
    sizes: dict[str, int] = {}
    for recipe in config.grid.recipe or []:
        name = (
            recipe
            if sized_recipe(recipe)
            else grid_recipe_name(recipe, min(v for v in config.grid.volume if v != "all"))
        )
        try:
            counts = [sum(recipe_counts(groups, named_recipe(name)).values()) for groups in available]
        except DataError as error:
            raise DataError(f"grid.recipe: {recipe!r}: {error}") from None
        if recipe in FIXED_RECIPES:
            if min(counts) == 0:
                raise DataError(f"grid.recipe: {recipe!r} selects no training examples of '{config.data.source}'")
            sizes[recipe] = min(counts)
    grid = config.grid.model_copy(update={"recipe_sizes": sizes})
    return config.model_copy(update={"grid": grid})


def trial_table(config: SweepConfig) -> list[TrialFactors]:
    """One row per trial (volumes resolved first)."""
    return config.grid.points()


def arrangements_needed(trials: Sequence[TrialFactors]) -> list[ArrangementKey]:
    """The arrangements the trials train on, each once (models share them), in the trials' order."""
    keys = (arrangement_key_of(trial) for trial in trials)
    return list(dict.fromkeys(keys))


def seed_free_models(config: SweepConfig) -> set[str]:
    """Models whose training the seed cannot move: built-in ones (no dropout, a tokenizer that already holds every
    role token, so no new embedding rows) trained for one epoch or repeating the arrangement each epoch. A
    pretrained model may have dropout or gain rows: the seed moves it, so its trials always run."""
    free = set()
    for key in config.grid.model:
        train = config.train_for(key)
        if config.models[key].builtin is not None and (train.epochs == 1 or train.epoch_order == "repeat"):
            free.add(key)
    return free


def seed_repeats(
    trials: Sequence[TrialFactors],
    data_of_seed: Mapping[int, object],
    order_digests: Mapping[ArrangementKey, str],
    free_models: set[str],
) -> dict[TrialFactors, TrialFactors]:
    """trial → the trial of a lower seed it would repeat to the bit: the same seed-free model, the same data
    (`data_of_seed`: one identity per distinct replicate) and the same items in the same order. Run once and
    report the others as such: a second run would only count one result twice in every interval."""
    first: dict[tuple, TrialFactors] = {}
    repeats: dict[TrialFactors, TrialFactors] = {}
    for trial in sorted(trials, key=lambda factors: factors.seed):
        if trial.model not in free_models:
            continue
        order = order_digests[arrangement_key_of(trial)]
        signature = (trial.model, trial.recipe, trial.volume, trial.permutation, id(data_of_seed[trial.seed]), order)
        if signature in first:
            repeats[trial] = first[signature]
        else:
            first[signature] = trial
    return repeats
