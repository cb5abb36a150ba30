"""Normalised data cached as Parquet, keyed by (source files' content, format options, sampling, seed).

A second load of unchanged inputs reads one Parquet file instead of re-parsing every source file; any
change to a source file's bytes, to the options or to the recipe is a different key, hence a miss. Entries are
verified against their sidecar on read (`dynamics.io.open_verified`): a damaged one is moved aside, a miss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dynamics.data.records import list_files
from dynamics.data.schema import CANONICAL_SCHEMA
from dynamics.io import cache_key, file_digest, open_verified, parquet_bytes, table_from_parquet_bytes, write_verified

CACHE_VERSION = 2  # bump when normalisation changes what the same inputs produce


def source_fingerprint(location: str) -> dict[str, str]:
    """Content hash per file of a local source (paths relative to it); a hub name stands for itself."""
    root = Path(location)
    if not root.exists():
        return {"hub": location}
    files = list_files(root, suffixes=(".json", ".jsonl", ".parquet", ".txt"))
    base = root if root.is_dir() else root.parent
    return {str(file.relative_to(base)): file_digest(file) for file in files}


def referenced_files(options: dict[str, Any]) -> dict[str, str]:
    """Content hashes of files that format options point at (split lists, key files), so editing one is a miss."""
    found: dict[str, str] = {}
    values = list(options.values())
    while values:
        value = values.pop()
        if isinstance(value, dict):
            values.extend(value.values())
        elif isinstance(value, list):
            values.extend(value)
        elif isinstance(value, str) and Path(value).is_file():
            found[value] = file_digest(Path(value))
    return dict(sorted(found.items()))


def data_cache_key(description: dict[str, Any]) -> str:
    return cache_key("data", CACHE_VERSION, description)


def read_cached(cache_dir: Path, key: str) -> pa.Table | None:
    """The cached table of `key`, or None: absent, or damaged (then moved to `damaged/` with a warning)."""
    with open_verified(cache_dir / f"{key}.parquet") as handle:
        if handle is None:
            return None
        return _with_arrow_names(pq.read_table(handle))


def _with_arrow_names(table: pa.Table) -> pa.Table:
    """Parquet names a list's child "element", Arrow "item": cast back to the canonical schema."""
    return table.cast(CANONICAL_SCHEMA) if table.schema.names == CANONICAL_SCHEMA.names else table


def write_cached(cache_dir: Path, key: str, table: pa.Table) -> tuple[Path, pa.Table]:
    """Store `table` under `key`; (its path, the table as a later hit will read it). A miss returns that stored
    form (same values, Parquet's buffer layout), so a miss and a hit give the same `table_digest`, hence the
    same arrangement keys; it is decoded from the bytes just written, not encoded twice."""
    data = parquet_bytes(table)
    path = write_verified(cache_dir / f"{key}.parquet", data)
    return path, _with_arrow_names(table_from_parquet_bytes(data))
