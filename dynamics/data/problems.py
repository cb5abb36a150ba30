"""Bad input, named precisely: every data problem says which file, which row (or line) and which field.

Strict mode (the default) raises on the first row problem, and says that lenient mode would skip it.
Lenient mode skips the row, keeps going and writes a report of every skipped row, so no example is lost
without a record of why. Problems with a whole file (missing, unparseable, no `Definition`) raise in both
modes: skipping rows cannot help there, so their messages carry no lenient hint.

Places are 1-based ordinals, like line numbers: "line 3" is the file's third line (JSON Lines, task lists),
"row 3" the third record (of a JSON list file, a Parquet file, a hub split), "instance 3" the third entry
of an NIV2 task's `Instances`. Bracketed indices inside a field path (`conversations[0].from`, `output[1]`)
are 0-based, as jq and Python write them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

LENIENT_HINT = "(--lenient or data.lenient: true skips bad rows and reports each one)"


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
    """Data that cannot be used as asked; the message names the file, row and field.

    `hint` (e.g. `LENIENT_HINT`) ends the message: what the user can change to get past it.
    """

    def __init__(self, problem: DataProblem | str, hint: str = ""):
        super().__init__(f"{problem} {hint}" if hint else str(problem))
        self.problem = problem if isinstance(problem, DataProblem) else None


class ProblemLog:
    """Row-level problems and deliberate omissions of one source's load.

    `report`: a row cannot be used; raises when strict (with the lenient hint), records and skips when lenient.
    `leave_out`: something is left out by design in either mode (e.g. a training task without instances);
    never raised, always recorded, so the load can say what it dropped.
    """

    def __init__(self, lenient: bool = False):
        self.lenient = lenient
        self.skipped: list[DataProblem] = []
        self.left_out: list[DataProblem] = []

    def report(self, problem: DataProblem) -> None:
        """A row cannot be used: raise (strict) or record it as skipped (lenient)."""
        if not self.lenient:
            raise DataError(problem, hint=LENIENT_HINT)
        self.skipped.append(problem)

    def leave_out(self, problem: DataProblem) -> None:
        """Record a task, file or rows dropped on purpose; the caller goes on without them."""
        self.left_out.append(problem)

    def write_report(self, path: Path) -> Path:
        """Every skipped row, then everything left out, as one JSON line each: file, where, field, message."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for problem in [*self.skipped, *self.left_out]:
                handle.write(json.dumps(asdict(problem), ensure_ascii=False) + "\n")
        return path
