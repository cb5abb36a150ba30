"""Load the configured data into one canonical table (SPEC §1) through its registered data source.

After the format's loader, checks that need every row: duplicate ids (both places named), a task in both the
train and test splits, and non-empty train and test splits. In lenient mode skipped rows are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dynamics.config import DataConfig, EvalSourceConfig
from dynamics.data.cache import data_cache_key, read_cached, referenced_files, source_fingerprint, write_cached
from dynamics.data.formats import FORMATS, ArrowRows, LoadRequest, SourcedRow
from dynamics.data.problems import DataError, DataProblem, ProblemLog
from dynamics.data.recipes import apply_recipe
from dynamics.data.sampling import sample_per_task
from dynamics.data.schema import build_table, split_of
from dynamics.ids import first_duplicate

__all__ = ["DataError", "LoadedData", "load_data", "load_examples", "SKIPPED_REPORT"]
SKIPPED_REPORT = "skipped_rows.jsonl"


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
    tasks = {
        split: set(pc.unique(split_of(table, split).column("task")).to_pylist()) for split in ("train", "test")
    }
    leaked = sorted(tasks["train"] & tasks["test"])
    if leaked:
        raise DataError(
            DataProblem(origin, "", "task", f"task(s) in both the train and test splits: {', '.join(leaked[:10])}")
        )


def _load_format(
    source: DataConfig | EvalSourceConfig,
    seed: int,
    lenient: bool,
    report_dir: Path | None,
    report_name: str = SKIPPED_REPORT,
) -> pa.Table:
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
    if log.skipped:
        report = log.write_report((report_dir or Path(".")) / report_name)
        print(f"lenient: skipped {len(log.skipped)} bad row(s) of {location}; every one is listed in {report}")
    return table


def _with_test_source(
    table: pa.Table, test_source: EvalSourceConfig, seed: int, lenient: bool, report_dir: Path | None
) -> pa.Table:
    """Training rows of `table` plus test rows from another source."""
    test = _load_format(test_source, seed, lenient, report_dir, report_name=f"test_source_{SKIPPED_REPORT}")
    if test_source.split == "test":
        test = split_of(test, "test")
    else:
        split_field = test.schema.field("split")
        test = test.set_column(
            test.schema.get_field_index("split"), split_field, pa.array(["test"] * test.num_rows, pa.string())
        )
    own = table.filter(pc.not_equal(table.column("split"), "test"))
    return pa.concat_tables([own, test])


def _disjoint_tasks(config: DataConfig) -> bool:
    if config.disjoint_tasks is not None:
        return config.disjoint_tasks
    if config.test_source is not None:
        return True  # a separate test source is a zero-shot set-up
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

    Order: load (and the test source) → task-leak check → sampling protocol / volume recipe → split check.
    """
    key = None
    description = _cache_description(config, seed) if cache_dir is not None else None
    if cache_dir is not None and description is not None:
        key = data_cache_key(description)
        cached = read_cached(cache_dir, key)
        if cached is not None:
            return LoadedData(_checked_splits(cached, config), cache_dir / f"{key}.parquet", True)
    table = _load_format(config, seed, config.lenient, report_dir)
    if config.test_source is not None:
        table = _with_test_source(table, config.test_source, seed, config.lenient, report_dir)
    if _disjoint_tasks(config):
        _check_task_splits(table, str(config.path or config.source))
    table = _checked_splits(_sampled(table, config, seed), config)
    path = write_cached(cache_dir, key, table) if cache_dir is not None and key is not None else None
    return LoadedData(table, path, False)


def _sampled(table: pa.Table, config: DataConfig, seed: int) -> pa.Table:
    """`config.sample` then `config.recipe` (each only when set) applied to a loaded canonical table."""
    if config.sample is not None:
        table = sample_per_task(table, config.sample, seed)
    if config.recipe is not None:
        table = apply_recipe(table, config.recipe, seed)
    return table


def _checked_splits(table: pa.Table, config: DataConfig) -> pa.Table:
    origin = config.path or config.source
    for split in ("train", "test"):
        if split_of(table, split).num_rows == 0:
            raise DataError(f"{origin}: the '{split}' split is empty; a study needs training and test examples")
    return table


def load_examples(config: DataConfig, seed: int, report_dir: Path | None = None) -> pa.Table:
    """The configured examples as a canonical table (no cache), checked to be able to run a study."""
    return load_data(config, seed, report_dir=report_dir).table
