"""Data sources by name (SPEC §1.2): a config says `source: niv2` and `path: …` and gets canonical rows.

A format is a loader `(LoadRequest, ProblemLog) -> list[SourcedRow] | ArrowRows` plus a pydantic model of its
options, registered in `FORMATS` by the module that defines it (every module of this package is imported on
the first lookup, so a new format is one new module). A SourcedRow is (file, where, canonical row dict), so
later checks (duplicate ids, a task in two splits) can name both places. Loaders check each row with
`checked_row`, so a bad row is named (file, row/line, field) or, when lenient, skipped and reported.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from dynamics.data.problems import DataError, DataProblem, ProblemLog
from dynamics.data.schema import row_problem
from dynamics.names import closest
from dynamics.registry import Registry


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
    seed: int = 0  # for formats that generate their rows (the built-in tasks); file formats ignore it


SourcedRow = tuple[str, str, dict[str, Any]]  # (file, "line 3" / "row 3" (1-based), canonical row)


@dataclass(frozen=True)
class ArrowRows:
    """A loader's output as one already-validated canonical table (the fast path for large files)."""

    table: pa.Table
    file_starts: list[tuple[str, int]]  # (file, index of its first row in `table`), ascending

    def place(self, index: int) -> tuple[str, str]:
        """(file, "row k") of row `index` (0-based) of the table; k counts from 1 within its file."""
        position = bisect.bisect_right([start for _, start in self.file_starts], index) - 1
        file, start = self.file_starts[position]
        return file, f"row {index - start + 1}"


Loader = Callable[[LoadRequest, ProblemLog], "list[SourcedRow] | ArrowRows"]


@dataclass(frozen=True)
class Format:
    name: str
    loader: Loader
    options: type[BaseModel]
    disjoint_tasks: bool  # zero-shot sources hold whole tasks out; Study A's test shares its categories
    reads_files: bool  # False for a generator: it needs no `path`, and its rows are not cached by file content

    def check_options(self, options: Mapping[str, Any]) -> BaseModel:
        """`options` validated by the format's model; ValueError naming each bad `options.<key>` otherwise."""
        try:
            return self.options.model_validate(dict(options))
        except ValidationError as error:
            problems = []
            for problem in error.errors():
                key = ".".join(map(str, problem["loc"]))
                hint = ""
                if problem["type"] == "extra_forbidden":
                    valid = list(self.options.model_fields)
                    close = closest(key, valid)
                    hint = f"; did you mean '{close}'?" if close else f"; valid: {', '.join(valid) or 'none'}"
                problems.append(f"options.{key}: {problem['msg']}{hint}")
            raise ValueError(f"source '{self.name}': {'; '.join(problems)}") from None


FORMATS: Registry[Format] = Registry("data source", discover=__name__)


def register_format(
    name: str, options: type[BaseModel] = NoOptions, disjoint_tasks: bool = True, reads_files: bool = True
) -> Callable[[Loader], Loader]:
    """Register `loader` under `name`; names are unique.

    `disjoint_tasks` says whether train and test tasks must not overlap by default (a config may override).
    """

    def decorate(loader: Loader) -> Loader:
        FORMATS.add(name, Format(name, loader, options, disjoint_tasks, reads_files))
        return loader

    return decorate


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
