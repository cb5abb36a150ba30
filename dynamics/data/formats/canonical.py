"""Files already in the canonical schema (SPEC §1.1): JSON, JSON Lines or Parquet, any number of files."""

from __future__ import annotations

from typing import Any

from dynamics.data.formats import LoadRequest, SourcedRow, checked_row, register_format
from dynamics.data.problems import ProblemLog
from dynamics.data.records import iter_source


@register_format("canonical")
def load_canonical(request: LoadRequest, log: ProblemLog) -> list[SourcedRow]:
    rows = []
    for file, where, record in iter_source(request.location, log, request.hub_config):
        row: dict[str, Any] | None = checked_row(dict(record), file, where, log)
        if row is not None:
            rows.append((file, where, row))
    return rows
