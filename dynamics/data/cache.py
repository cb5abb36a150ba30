"""Normalised data cached as Parquet, keyed by (source files' content, format options, sampling, seed).

A second load of unchanged inputs reads one Parquet file instead of re-parsing every source file; any
change to a source file's bytes, to the options or to the recipe is a different key, hence a miss.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dynamics.data.records import list_files

CACHE_VERSION = 1  # bump when normalisation changes what the same inputs produce


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_fingerprint(location: str) -> dict[str, str]:
    """Content hash per file of a local source (paths relative to it); a hub name stands for itself."""
    root = Path(location)
    if not root.exists():
        return {"hub": location}
    files = list_files(root, suffixes=(".json", ".jsonl", ".parquet", ".txt"))
    base = root if root.is_dir() else root.parent
    return {str(file.relative_to(base)): _file_digest(file) for file in files}


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
            found[value] = _file_digest(Path(value))
    return dict(sorted(found.items()))


def cache_key(description: dict[str, Any]) -> str:
    payload = json.dumps({"version": CACHE_VERSION, **description}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet encoding: the same table gives the same bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def read_cached(cache_dir: Path, key: str) -> pa.Table | None:
    path = cache_dir / f"{key}.parquet"
    return pq.read_table(path) if path.exists() else None


def write_cached(cache_dir: Path, key: str, table: pa.Table) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{key}.parquet"
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(parquet_bytes(table))
    temporary.replace(path)
    return path
