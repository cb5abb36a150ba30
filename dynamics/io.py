"""Bytes on disk: content digests, versioned cache keys, deterministic Parquet, atomic and verified writes.

Every cache (normalised data, embeddings, arrangements) keys its entries with `cache_key`, so a key names the
cache it belongs to and the version of the code that filled it; bump a cache's version whenever the same
inputs would produce different bytes. Writers publish files with `atomic_write_*` (a unique temporary name
beside the target, then a rename), so a reader never sees half a file, whoever else writes at the same time.

A rename cannot help against what happens to a file after it is published (a full disk that a copy truncated, a
bad block, a hand edit), so cache entries are written with `write_verified` / `verified_output`: beside
`<name>` a sidecar `<name>.sha256.json` records its size and sha256, and `open_verified` / `read_verified`
hand out an entry only when both match. A damaged entry is moved aside to `damaged/` beside it (kept for a
person to look at), logged as a warning, and reads as a miss, so the caller rebuilds it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

KEY_LENGTH = 20  # hex characters of a cache key: 80 bits, no collision in any cache we will hold
SIDECAR_SUFFIX = ".sha256.json"
DAMAGED_FOLDER = "damaged"
_BLOCK = 1 << 20  # bytes per read while hashing: 1 MiB
log = logging.getLogger(__name__)


def cache_key(cache: str, version: int, description: Mapping[str, Any]) -> str:
    """Key of the entry `description` (JSON-able; other values by `str`) in cache `cache` at `version`."""
    payload = json.dumps({"cache": cache, "version": version, "description": description}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_LENGTH]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    with path.open("rb") as handle:
        return _digest_of_handle(handle)[1]


def _digest_of_handle(handle: IO[bytes]) -> tuple[int, str]:
    """(bytes read, sha256) of the rest of `handle`."""
    digest, size = hashlib.sha256(), 0
    for block in iter(lambda: handle.read(_BLOCK), b""):
        digest.update(block)
        size += len(block)
    return size, digest.hexdigest()


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


# --- verified cache entries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """What is wrong with a cache entry, in words a person can act on."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def sidecar_path(path: Path) -> Path:
    """Where the size and sha256 of the entry `path` are recorded."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


class _DigestingWriter(io.RawIOBase):
    """Passes writes on to `handle` and hashes them on the way, so a large entry is never read back to hash it."""

    def __init__(self, handle: IO[bytes]):
        super().__init__()
        self._handle = handle
        self._digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._handle.write(view)
        self._digest.update(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def record(self) -> str:
        return json.dumps({"sha256": self._digest.hexdigest(), "size": self.size}, sort_keys=True) + "\n"


@contextmanager
def verified_output(path: Path) -> Iterator[io.RawIOBase]:
    """Like `atomic_output`, and the sidecar records the size and sha256 of what was written.

    The sidecar is published before the entry, so whoever finds an entry finds its sidecar: an entry without
    one is damage, never a write in flight. A writer that dies in between leaves a sidecar alone: a miss.
    """
    with atomic_output(path) as handle:
        writer = _DigestingWriter(handle)
        yield writer
        atomic_write_text(sidecar_path(path), writer.record())  # before the entry itself is renamed into place


def write_verified(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically, with its sidecar; return `path`."""
    with verified_output(path) as handle:
        handle.write(data)
    return path


def _recorded(path: Path) -> tuple[int, str]:
    """(size, sha256) that the sidecar of `path` records; ValueError naming what is wrong with it."""
    sidecar = sidecar_path(path)
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no sidecar {sidecar.name} records its size and sha256 (lost, or never written)") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"its sidecar {sidecar.name} is unreadable ({error})") from None
    if not (isinstance(record, dict) and isinstance(record.get("size"), int) and isinstance(record.get("sha256"), str)):
        raise ValueError(f"its sidecar {sidecar.name} holds {record!r}, not {{size, sha256}}")
    return record["size"], record["sha256"]


def _problem(path: Path, handle: IO[bytes]) -> str | None:
    """What is wrong with the entry open as `handle`, or None when its size and sha256 match its sidecar."""
    try:
        size, sha256 = _recorded(path)
    except ValueError as error:
        return str(error)
    on_disk = os.fstat(handle.fileno()).st_size
    if on_disk != size:  # caught without reading a large entry
        return f"{on_disk} bytes, but {size} were written (truncated or overwritten)"
    try:
        read, found = _digest_of_handle(handle)
    except OSError as error:
        return f"unreadable ({error})"
    if read != size:
        return f"{read} bytes read, but {size} were written (changed while being read)"
    if found != sha256:
        return f"sha256 {found[:16]}… differs from the {sha256[:16]}… written (bytes changed in place)"
    return None


def verify_entry(path: Path) -> Damage | None:
    """None when the entry at `path` matches its sidecar; else what is wrong with it (it is left where it is)."""
    try:
        with path.open("rb") as handle:
            problem = _problem(path, handle)
    except OSError as error:
        problem = f"unreadable ({error})"
    return None if problem is None else Damage(path, problem)


def move_aside(path: Path, problem: str) -> Path | None:
    """Move the damaged entry `path` (a file or a folder) to `damaged/<name>.<UTC time>` beside it, with a warning.

    Kept, not deleted, so a person can see what went wrong; None when it is gone already (another reader moved it).
    """
    folder = path.parent / DAMAGED_FOLDER
    target = folder / f"{path.name}.{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    except FileNotFoundError:
        log.warning("damaged cache entry %s: %s; another process has moved it already; rebuilding", path, problem)
        return None
    except OSError as error:  # e.g. a read-only cache: still a miss, and the rebuild writes over it
        log.warning("damaged cache entry %s: %s; cannot move it to %s (%s); rebuilding", path, problem, folder, error)
        return None
    log.warning("damaged cache entry %s: %s; moved to %s; rebuilding", path, problem, target)
    return target


def _same_file(path: Path, handle: IO[bytes]) -> bool:
    try:
        now, opened = os.stat(path), os.fstat(handle.fileno())
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)


@contextmanager
def open_verified(path: Path) -> Iterator[IO[bytes] | None]:
    """The entry at `path`, open at its start once its size and sha256 match its sidecar; None on a miss.

    The file that was hashed is the file handed out, so the bytes checked are the bytes read even if another
    process replaces the entry meanwhile. A damaged entry is moved aside (`move_aside`) and reads as a miss,
    so the caller rebuilds it.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        yield None
        return
    except OSError as error:
        move_aside(path, f"unreadable ({error})")
        yield None
        return
    with handle:
        problem = _problem(path, handle)
        if problem is None:
            handle.seek(0)
            yield handle
            return
        if _same_file(path, handle):
            move_aside(path, problem)
        else:  # replaced by a writer since it was opened: nothing of the damaged one left to move
            log.warning("damaged cache entry %s: %s; already replaced by another writer", path, problem)
    yield None


def read_verified(path: Path) -> bytes | None:
    """The bytes of the entry at `path` once they match its sidecar; None on a miss (absent, or damaged)."""
    with open_verified(path) as handle:
        return None if handle is None else handle.read()


MANIFEST_NAME = "manifest.sha256.json"


def write_manifest(folder: Path) -> Path:
    """Record size and sha256 of every file in `folder` (a multi-file cache entry, e.g. a saved model)."""
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.name != MANIFEST_NAME)
    record = {
        str(path.relative_to(folder)): {"size": path.stat().st_size, "sha256": file_digest(path)} for path in files
    }
    return atomic_write_text(folder / MANIFEST_NAME, json.dumps(record, indent=1, sort_keys=True) + "\n")


def folder_damage(folder: Path) -> Damage | None:
    """None when every file the manifest of `folder` names has its recorded size and sha256."""
    try:
        record = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Damage(folder, f"no {MANIFEST_NAME} (written before verification, or the write was cut short)")
    except (OSError, ValueError) as error:
        return Damage(folder, f"unreadable {MANIFEST_NAME} ({error})")
    for name, expected in sorted(record.items()):
        path = folder / name
        if not path.is_file():
            return Damage(folder, f"{name} is missing")
        size = path.stat().st_size
        if size != expected["size"]:
            return Damage(folder, f"{name} has {size} bytes, {expected['size']} were written")
        if file_digest(path) != expected["sha256"]:
            return Damage(folder, f"{name} has other bytes than were written (sha256 differs)")
    return None


def filesystem_name(name: str) -> str:
    """`name` with only letters, digits, '.', '_' and '-': a folder name on every storage (Ray Train's run)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
