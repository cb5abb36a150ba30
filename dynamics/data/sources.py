"""Registered data sources: a config says `source: <name>` and gets a canonical table (SPEC §1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from dynamics.config import DataConfig
from dynamics.data.builtin import generate_builtin
from dynamics.data.schema import SchemaError, split_of, to_table

Loader = Callable[[DataConfig, int], pa.Table]
SOURCES: dict[str, Loader] = {}


class DataError(ValueError):
    """The loaded data cannot run a study (e.g. an empty test split); the message says which and why."""


def register_source(name: str) -> Callable[[Loader], Loader]:
    def decorate(loader: Loader) -> Loader:
        SOURCES[name] = loader
        return loader

    return decorate


@register_source("builtin")
def _builtin(config: DataConfig, seed: int) -> pa.Table:
    return generate_builtin(config.per_train_task, config.per_test_task, seed)


@register_source("canonical")
def _canonical(config: DataConfig, seed: int) -> pa.Table:
    """A JSON / JSONL / Parquet file whose rows are already canonical examples, read through `datasets`."""
    import datasets

    path = Path(config.path or "")
    if not path.is_file():
        raise DataError(f"data.path: {path} is not a file")
    builder = "parquet" if path.suffix == ".parquet" else "json"
    rows = datasets.load_dataset(builder, data_files=str(path), split="train").to_list()
    return to_table(rows, origin=str(path))


def load_examples(config: DataConfig, seed: int) -> pa.Table:
    """Load the configured source and check that it can run a study (non-empty train and test splits)."""
    origin = config.path or config.source
    try:
        table = SOURCES[config.source](config, seed)
    except SchemaError as error:
        raise DataError(str(error)) from None
    for split in ("train", "test"):
        if split_of(table, split).num_rows == 0:
            raise DataError(f"{origin}: the '{split}' split is empty; a study needs training and test examples")
    return table
