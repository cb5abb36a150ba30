"""Bytes on disk: content digests, versioned cache keys, deterministic Parquet, atomic writes.

Every cache (normalised data, embeddings, arrangements) keys its entries with `cache_key`, so a key names the
cache it belongs to and the version of the code that filled it; bump a cache's version whenever the same
inputs would produce different bytes. Writers publish files with `atomic_write_*` (a unique temporary name
beside the target, then a rename), so a reader never sees half a file, whoever else writes at the same time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

KEY_LENGTH = 20  # hex characters of a cache key: 80 bits, no collision in any cache we will hold


def cache_key(cache: str, version: int, description: Mapping[str, Any]) -> str:
    """Key of the entry `description` (JSON-able; other values by `str`) in cache `cache` at `version`."""
    payload = json.dumps({"cache": cache, "version": version, "description": description}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_LENGTH]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def strings_digest(texts: Iterable[str]) -> str:
    """sha256 over the texts in order (each hashed on its own, so boundaries between texts count)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


def table_digest(table: pa.Table) -> str:
    """16 hex characters over a table's schema and values (Arrow IPC bytes are deterministic for both)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]


def parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet (zstd): the same table gives the same bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def table_from_parquet_bytes(data: bytes) -> pa.Table:
    """The table of `parquet_bytes` (e.g. an artifact shipped through Ray's object store)."""
    return pq.read_table(io.BytesIO(data))


def temporary_sibling(path: Path) -> Path:
    """A name beside `path` that no other process or thread will pick (pid + random suffix)."""
    return path.with_name(f"{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:12]}")


@contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A binary handle whose bytes appear at `path` only once the block ends without an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    try:
        with temporary.open("wb") as handle:
            yield handle
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; return `path`."""
    with atomic_output(path) as handle:
        handle.write(data)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically; return `path`."""
    return atomic_write_bytes(path, text.encode("utf-8"))
