"""Files already in the canonical schema (SPEC §1.1): JSON, JSON Lines or Parquet, any number of files.

Fast path: each file is read by `datasets` straight into Arrow, cast to the canonical schema and checked
with vectorised Arrow kernels. Only when that finds a problem (or in lenient mode) are the records walked
one by one, which is what names the exact file, row/line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from dynamics.data.arrow_checks import conform, invalid_rows
from dynamics.data.formats import ArrowRows, LoadRequest, SourcedRow, checked_row, register_format
from dynamics.data.problems import ProblemLog
from dynamics.data.records import arrow_via_datasets, iter_source, list_files


def _arrow_rows(files: list[Path]) -> ArrowRows | None:
    """All files as one validated canonical table, or None if any file needs the row-by-row path."""
    tables, starts, start = [], [], 0
    for file in files:
        raw = arrow_via_datasets(file)
        table = None if raw is None else conform(raw)
        if table is None or len(invalid_rows(table)):
            return None
        tables.append(table)
        starts.append((str(file), start))
        start += table.num_rows
    return ArrowRows(pa.concat_tables(tables), starts)


@register_format("canonical")
def load_canonical(request: LoadRequest, log: ProblemLog) -> list[SourcedRow] | ArrowRows:
    path = Path(request.location)
    if path.exists() and not log.lenient:
        fast = _arrow_rows(list_files(path))
        if fast is not None:
            return fast
    rows = []
    for file, where, record in iter_source(request.location, log, request.hub_config):
        row: dict[str, Any] | None = checked_row(dict(record), file, where, log)
        if row is not None:
            rows.append((file, where, row))
    return rows
