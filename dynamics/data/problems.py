"""Bad input, named precisely: every data problem says which file, which row (or line) and which field.

Strict mode (the default) raises on the first problem. Lenient mode skips the row, keeps going and writes
a report of every skipped row, so no example is lost without a record of why.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataProblem:
    """One problem in one place: `where` is e.g. "line 12", "row 3" or "" for the whole file."""

    file: str
    where: str
    field: str
    message: str

    def __str__(self) -> str:
        place = f": {self.where}" if self.where else ""
        field = f": field '{self.field}'" if self.field else ""
        return f"{self.file}{place}{field}: {self.message}"


class DataError(ValueError):
    """Data that cannot be used as asked; the message names the file, row and field."""

    def __init__(self, problem: DataProblem | str):
        super().__init__(str(problem))
        self.problem = problem if isinstance(problem, DataProblem) else None


class ProblemLog:
    """Collects row-level problems: raises at once when strict, records and skips when lenient."""

    def __init__(self, lenient: bool = False):
        self.lenient = lenient
        self.skipped: list[DataProblem] = []

    def report(self, problem: DataProblem) -> None:
        """A row cannot be used: raise (strict) or record it as skipped (lenient)."""
        if not self.lenient:
            raise DataError(problem)
        self.skipped.append(problem)

    def write_report(self, path: Path) -> Path:
        """Every skipped row as one JSON line: file, where, field, message."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for problem in self.skipped:
                handle.write(json.dumps(asdict(problem), ensure_ascii=False) + "\n")
        return path
