"""Registry of source formats (SPEC §1.2): a config says `source: niv2` and `path: …` and gets canonical rows.

A format is a loader `(LoadRequest, ProblemLog) -> list[SourcedRow]` plus a pydantic model of its options;
a SourcedRow is (file, where, canonical row dict), so later checks (duplicate ids, a task in two splits) can
name both places.
Loaders check each row with `checked_row`, so a bad row is named (file, row/line, field) or, when lenient,
skipped and reported. Modules register on import; `load_formats()` imports them all.
"""

from __future__ import annotations

import bisect
import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from dynamics.data.problems import DataError, DataProblem, ProblemLog
from dynamics.data.schema import row_problem

FORMAT_MODULES = (
    "dynamics.data.formats.canonical",
    "dynamics.data.formats.doit",
    "dynamics.data.formats.niv2",
    "dynamics.data.formats.sharegpt",
    "dynamics.data.formats.flan_mini",
    "dynamics.data.formats.norobots",
    "dynamics.data.formats.alpaca",
    "dynamics.data.formats.p3",
)


class NoOptions(BaseModel):
    """A format without options."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class LoadRequest:
    """What to load: a local file/folder or a hub dataset name, with the format's validated options."""

    location: str
    name: str  # written to the `source` column
    options: BaseModel
    hub_config: str | None = None


SourcedRow = tuple[str, str, dict[str, Any]]  # (file, "line 3" / "row 3", canonical row)


@dataclass(frozen=True)
class ArrowRows:
    """A loader's output as one already-validated canonical table (the fast path for large files)."""

    table: pa.Table
    file_starts: list[tuple[str, int]]  # (file, index of its first row in `table`), ascending

    def place(self, index: int) -> tuple[str, str]:
        """(file, "row k") of row `index` of the table."""
        position = bisect.bisect_right([start for _, start in self.file_starts], index) - 1
        file, start = self.file_starts[position]
        return file, f"row {index - start}"


Loader = Callable[[LoadRequest, ProblemLog], "list[SourcedRow] | ArrowRows"]


@dataclass(frozen=True)
class Format:
    name: str
    loader: Loader
    options: type[BaseModel]
    disjoint_tasks: bool  # zero-shot sources hold whole tasks out; Study A's test shares its abilities


FORMATS: dict[str, Format] = {}


def register_format(
    name: str, options: type[BaseModel] = NoOptions, disjoint_tasks: bool = True
) -> Callable[[Loader], Loader]:
    """Register `loader` under `name`; names are unique.

    `disjoint_tasks` says whether train and test tasks must not overlap by default (a config may override).
    """

    def decorate(loader: Loader) -> Loader:
        if name in FORMATS:
            raise ValueError(f"a format named {name!r} is already registered")
        FORMATS[name] = Format(name, loader, options, disjoint_tasks)
        return loader

    return decorate


def load_formats() -> dict[str, Format]:
    for module in FORMAT_MODULES:
        importlib.import_module(module)
    return FORMATS


def get_format(name: str) -> Format:
    """The registered format `name`; an unknown name lists the valid ones and the closest match."""
    formats = load_formats()
    if name not in formats:
        close = difflib.get_close_matches(name, list(formats), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown data source {name!r}; registered: {', '.join(sorted(formats))}{hint}")
    return formats[name]


def checked_row(row: dict[str, Any], file: str, where: str, log: ProblemLog) -> dict[str, Any] | None:
    """`row` if it is a valid canonical example; otherwise report it (raise when strict) and return None."""
    problem = row_problem(row)
    if problem is None:
        return row
    log.report(DataProblem(file, where, problem[0], problem[1]))
    return None


def require(record: Mapping[str, Any], field: str, kind: type | tuple[type, ...], file: str, where: str) -> Any:
    """`record[field]` if present and of `kind`, else a DataError naming file, row and field."""
    if field not in record or record[field] is None:
        raise DataError(DataProblem(file, where, field, "missing"))
    value = record[field]
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(DataProblem(file, where, field, f"expected {expected}, got {type(value).__name__}"))
    return value
