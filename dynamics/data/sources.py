"""Load the configured data into one canonical table (SPEC §1): the built-in generator or a registered format.

After the format's loader, checks that need every row: duplicate ids (both places named), a task in both the
train and test splits, and non-empty train and test splits. In lenient mode skipped rows are reported.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dynamics.config import DataConfig
from dynamics.data.builtin import generate_builtin
from dynamics.data.formats import LoadRequest, SourcedRow, get_format
from dynamics.data.problems import DataError, DataProblem, ProblemLog
from dynamics.data.schema import split_of, to_table

__all__ = ["DataError", "load_examples", "SKIPPED_REPORT"]
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


def _check_task_splits(rows: list[dict], origin: str) -> None:
    """A task must not be both trained on and held out: that would leak the test set into training."""
    splits_of_task: dict[str, set[str]] = {}
    for row in rows:
        splits_of_task.setdefault(row["task"], set()).add(row["split"])
    leaked = sorted(task for task, splits in splits_of_task.items() if {"train", "test"} <= splits)
    if leaked:
        raise DataError(
            DataProblem(origin, "", "task", f"task(s) in both the train and test splits: {', '.join(leaked[:10])}")
        )


def _load_format(config: DataConfig, report_dir: Path | None) -> pa.Table:
    data_format = get_format(config.source)
    log = ProblemLog(lenient=config.lenient)
    request = LoadRequest(
        location=str(config.path),
        name=config.source,
        options=data_format.options.model_validate(config.options),
        hub_config=config.hub_config,
    )
    rows = _consistent_rows(data_format.loader(request, log), log)
    if log.skipped:
        report = log.write_report((report_dir or Path(".")) / SKIPPED_REPORT)
        print(f"lenient: skipped {len(log.skipped)} bad row(s); every one is listed in {report}")
    _check_task_splits(rows, str(config.path))
    return to_table(rows, origin=str(config.path))


def load_examples(config: DataConfig, seed: int, report_dir: Path | None = None) -> pa.Table:
    """The configured examples as a canonical table, checked to be able to run a study."""
    if config.source == "builtin":
        table = generate_builtin(config.per_train_task, config.per_test_task, seed)
    else:
        table = _load_format(config, report_dir)
    origin = config.path or config.source
    for split in ("train", "test"):
        if split_of(table, split).num_rows == 0:
            raise DataError(f"{origin}: the '{split}' split is empty; a study needs training and test examples")
    return table
