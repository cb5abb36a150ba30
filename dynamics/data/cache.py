"""Normalised data cached as Parquet, keyed by (source files' content, format options, sampling, seed).

A second load of unchanged inputs reads one Parquet file instead of re-parsing every source file; any
change to a source file's bytes, to the options or to the recipe is a different key, hence a miss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dynamics.data.records import list_files
from dynamics.io import atomic_write_bytes, cache_key, file_digest, parquet_bytes

CACHE_VERSION = 1  # bump when normalisation changes what the same inputs produce


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
    path = cache_dir / f"{key}.parquet"
    return pq.read_table(path) if path.exists() else None


def write_cached(cache_dir: Path, key: str, table: pa.Table) -> Path:
    return atomic_write_bytes(cache_dir / f"{key}.parquet", parquet_bytes(table))
