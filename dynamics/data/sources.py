"""Load the configured data into one canonical table (SPEC §1) through its registered data source.

After the format's loader, checks that need every row: duplicate ids (both places named), a task in both the
train and test splits, and non-empty train and test splits. A split that ends up empty is named with the
step that emptied it (the source itself, `data.lenient`, `data.test_source.split`, `data.sample`,
`data.recipe`), so the error says which key to change. Skipped rows (lenient) and whatever a format left
out on purpose (e.g. a training task without instances) are logged and written to the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dynamics.config import DataConfig, EvalSourceConfig
from dynamics.data.cache import (
    data_cache_key,
    read_cached,
    referenced_files,
    source_fingerprint,
    write_cached,
)
from dynamics.data.formats import FORMATS, ArrowRows, LoadRequest, SourcedRow
from dynamics.data.problems import DataError, DataProblem, ProblemLog
from dynamics.data.recipes import apply_recipe
from dynamics.data.sampling import sample_per_task
from dynamics.data.schema import build_table, split_of
from dynamics.ids import first_duplicate

__all__ = ["DataError", "LoadedData", "load_data", "load_eval_source", "load_examples", "SKIPPED_REPORT"]
SKIPPED_REPORT = "skipped_rows.jsonl"
SHOWN_LEFT_OUT = 10  # left-out items logged one by one; the report lists every one
logger = logging.getLogger(__name__)


def _consistent_rows(sourced: list[SourcedRow], log: ProblemLog) -> list[dict]:
    """Rows with unique ids; a duplicate id is reported with both places."""
    first_place: dict[str, str] = {}
    rows = []
    for file, where, row in sourced:
        place = f"{file}: {where}"
        previous = first_place.setdefault(row["id"], place)
        if previous != place:
            log.report(DataProblem(file, where, "id", f"duplicate id {row['id']!r} (first at {previous})"))
            continue
        rows.append(row)
    return rows


def _check_task_splits(table: pa.Table, origin: str) -> None:
    """A task must not be both trained on and held out: that would leak the test set into training."""
    tasks = {split: set(pc.unique(split_of(table, split).column("task")).to_pylist()) for split in ("train", "test")}
    leaked = sorted(tasks["train"] & tasks["test"])
    if leaked:
        message = (
            f"task(s) in both the train and test splits: {', '.join(leaked[:10])} (set data.disjoint_tasks: "
            "false if the test split holds out examples of the training tasks rather than whole tasks)"
        )
        raise DataError(DataProblem(origin, "", "task", message))


@dataclass(frozen=True)
class _SourceTable:
    """One source's canonical rows, and how many bad rows lenient mode skipped on the way."""

    table: pa.Table
    origin: str
    skipped: int


def _load_format(
    source: DataConfig | EvalSourceConfig,
    seed: int,
    lenient: bool,
    report_dir: Path | None,
    report_name: str = SKIPPED_REPORT,
) -> _SourceTable:
    """One registered format's rows as a canonical table, with duplicate ids named (or skipped)."""
    data_format = FORMATS.get(source.source)
    options = data_format.check_options(source.options)
    if data_format.reads_files and not source.path:
        raise ValueError(f"source '{source.source}' needs 'path' (a local path or a hub dataset name)")
    location = str(source.path or source.source)
    log = ProblemLog(lenient=lenient)
    loaded = data_format.loader(LoadRequest(location, source.source, options, source.hub_config, seed), log)
    if isinstance(loaded, ArrowRows):
        table = loaded.table
        duplicate = first_duplicate(table.column("id"))
        if duplicate is not None:  # the fast path only runs strict, so this raises
            item_id, first, second = duplicate
            file, where = loaded.place(second)
            message = f"duplicate id {item_id!r} (first at {': '.join(loaded.place(first))})"
            log.report(DataProblem(file, where, "id", message))
    else:
        table = build_table(_consistent_rows(loaded, log))
    _report(log, location, report_dir, report_name)
    return _SourceTable(table, location, len(log.skipped))


def _report(log: ProblemLog, location: str, report_dir: Path | None, report_name: str) -> None:
    """Skipped rows (lenient) and left-out parts, logged and written to the report.

    Without a report folder, a strict load only logs what it left out rather than write into the working
    directory; lenient mode always writes the report (in `.` without a folder), as it always has.
    """
    if log.skipped or (log.left_out and report_dir is not None):
        report = log.write_report((report_dir or Path(".")) / report_name)
        if log.skipped:
            print(f"lenient: skipped {len(log.skipped)} bad row(s) of {location}; every one is listed in {report}")
        if log.left_out:
            logger.warning("%s: left out %d part(s); every one is listed in %s", location, len(log.left_out), report)
    for problem in log.left_out[:SHOWN_LEFT_OUT]:
        logger.warning("left out: %s", problem)
    if len(log.left_out) > SHOWN_LEFT_OUT:
        logger.warning("left out: ... and %d more of %s", len(log.left_out) - SHOWN_LEFT_OUT, location)


def load_eval_source(
    source: EvalSourceConfig, key: str, seed: int, lenient: bool = False, report_dir: Path | None = None
) -> pa.Table:
    """The test rows (split 'test') of an evaluation source configured at `key` (`data.test_source`,
    `evaluate.sets[0].source`, …): its test split, or every row; an empty result names the key to change."""
    stem = key.removeprefix("data.").replace(".", "_").replace("[", "_").replace("]", "")
    report_name = f"{stem}_{SKIPPED_REPORT}"  # data.test_source → test_source_skipped_rows.jsonl
    loaded = _load_format(source, seed, lenient, report_dir, report_name=report_name)
    test = loaded.table
    if test.num_rows == 0:
        raise DataError(f"{loaded.origin}: {key} loaded no rows{_skipped_note(loaded)}")
    if source.split == "test":
        test = split_of(test, "test")
        if test.num_rows == 0:
            raise DataError(_no_test_rows(loaded, source, key))
    else:
        split_field = test.schema.field("split")
        test = test.set_column(
            test.schema.get_field_index("split"), split_field, pa.array(["test"] * test.num_rows, pa.string())
        )
    return test


def _with_test_source(
    main: _SourceTable, test_source: EvalSourceConfig, seed: int, lenient: bool, report_dir: Path | None
) -> pa.Table:
    """Training rows of `main` plus test rows from another source; an empty result names the key to change."""
    test = load_eval_source(test_source, "data.test_source", seed, lenient, report_dir)
    table = main.table
    own = table.filter(pc.not_equal(table.column("split"), "test"))
    if own.num_rows < table.num_rows:
        logger.info("data.test_source replaces the %d test row(s) of %s", table.num_rows - own.num_rows, main.origin)
    return pa.concat_tables([own, test])


def _no_test_rows(loaded: _SourceTable, test_source: EvalSourceConfig, key: str) -> str:
    """Why a test source gave no test rows, and the keys that give it some."""
    splits = sorted(set(loaded.table.column("split").to_pylist()))
    fixes = [f"{key}.split: all (every row a test row)"]
    if "split" in FORMATS.get(test_source.source).options.model_fields:
        fixes.append(f"{key}.options.split: test")
    return (
        f"{loaded.origin}: the 'test' split is empty: {key}.split is 'test' (keep the source's test "
        f"rows), but its {loaded.table.num_rows} row(s) are in split(s) {', '.join(splits)}; set "
        f"{' or '.join(fixes)}{_skipped_note(loaded)}"
    )


def _skipped_note(loaded: _SourceTable) -> str:
    if not loaded.skipped:
        return ""
    return f" (data.lenient skipped {loaded.skipped} bad row(s) of it; see the report)"


def _disjoint_tasks(config: DataConfig) -> bool:
    """Whether a task may not be in both splits: the config's choice, else the sources' defaults.

    With a test source the check applies when either source holds out whole tasks (a zero-shot set-up).
    Two sources without task labels (ShareGPT training, a held-out ShareGPT file) give every row the source
    name as its task, so there the check could only fire falsely and is off.
    """
    if config.disjoint_tasks is not None:
        return config.disjoint_tasks
    if config.test_source is not None:
        return FORMATS.get(config.source).disjoint_tasks or FORMATS.get(config.test_source.source).disjoint_tasks
    return FORMATS.get(config.source).disjoint_tasks


def _cache_description(config: DataConfig, seed: int) -> dict | None:
    """What determines the loaded table, for its cache key; None when a source generates rather than reads files
    (its rows depend on code, which no key covers, and regenerating them is cheap)."""
    sources = [config] if config.test_source is None else [config, config.test_source]
    if not all(FORMATS.get(source.source).reads_files for source in sources):
        return None
    files = {"main": source_fingerprint(str(config.path)), "main_options": referenced_files(config.options)}
    if config.test_source is not None:
        files["test"] = source_fingerprint(str(config.test_source.path))
        files["test_options"] = referenced_files(config.test_source.options)
    return {"files": files, "data": config.model_dump(mode="json"), "seed": seed}


@dataclass(frozen=True)
class LoadedData:
    """The canonical table and where it came from (the cache file, and whether this load was a hit)."""

    table: pa.Table
    cache_path: Path | None
    cache_hit: bool


def load_data(
    config: DataConfig, seed: int, cache_dir: Path | None = None, report_dir: Path | None = None
) -> LoadedData:
    """Load (or read from the Parquet cache) the configured examples, sample them, check they can run a study.

    Order: load (the main source must give training rows, and test rows unless a test source does) → the
    test source → task-leak check → sampling protocol / volume recipe (neither may empty a split) → split check.
    """
    key = None
    description = _cache_description(config, seed) if cache_dir is not None else None
    if cache_dir is not None and description is not None:
        key = data_cache_key(description)
        cached = read_cached(cache_dir, key)
        if cached is not None:
            return LoadedData(_checked_splits(cached, config), cache_dir / f"{key}.parquet", True)
    main = _load_format(config, seed, config.lenient, report_dir)
    _check_loaded(main, config)
    table = main.table
    if config.test_source is not None:
        table = _with_test_source(main, config.test_source, seed, config.lenient, report_dir)
    if _disjoint_tasks(config):
        _check_task_splits(table, main.origin)
    table = _checked_splits(_sampled(table, config, seed), config)
    if cache_dir is None or key is None:
        return LoadedData(table, None, False)
    path, stored = write_cached(cache_dir, key, table)
    return LoadedData(stored, path, False)


def _sampled(table: pa.Table, config: DataConfig, seed: int) -> pa.Table:
    """`config.sample` then `config.recipe` (each only when set) applied to a loaded canonical table; a split
    either of them empties is an error naming it."""
    origin = str(config.path or config.source)
    if config.sample is not None:
        table = _thinned(table, sample_per_task(table, config.sample, seed), "data.sample", origin)
    if config.recipe is not None:
        table = _thinned(table, apply_recipe(table, config.recipe, seed), "data.recipe", origin)
    return table


def _thinned(before: pa.Table, after: pa.Table, option: str, origin: str) -> pa.Table:
    """`after`, unless `option` took every row of a split that `before` had."""
    had, kept = _split_counts(before), _split_counts(after)
    for split in ("train", "test"):
        if had.get(split) and not kept.get(split):
            message = f"the '{split}' split is empty after {option}: it kept none of {had[split]} row(s)"
            raise DataError(f"{origin}: {message}")
    return after


def _split_counts(table: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(table.column("split")).to_pylist()
    return {count["values"]: count["counts"] for count in counts}


def _check_loaded(main: _SourceTable, config: DataConfig) -> None:
    """The main source gave training rows, and test rows unless a test source supplies them."""
    needed = ("train",) if config.test_source is not None else ("train", "test")
    counts = _split_counts(main.table)
    for split in needed:
        if counts.get(split):
            continue
        cause = f"source '{config.source}' gave no {split} rows"
        if split == "test":
            cause += " (data.test_source can take the test split from another file or source)"
        raise DataError(
            f"{main.origin}: the '{split}' split is empty; a study needs training and test examples: "
            f"{cause}{_skipped_note(main)}"
        )


def _checked_splits(table: pa.Table, config: DataConfig) -> pa.Table:
    origin = config.path or config.source
    for split in ("train", "test"):
        if split_of(table, split).num_rows == 0:
            raise DataError(f"{origin}: the '{split}' split is empty; a study needs training and test examples")
    return table


def load_examples(config: DataConfig, seed: int, report_dir: Path | None = None) -> pa.Table:
    """The configured examples as a canonical table (no cache), checked to be able to run a study."""
    return load_data(config, seed, report_dir=report_dir).table
