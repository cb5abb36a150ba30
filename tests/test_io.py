"""Bytes on disk (dynamics.io): versioned cache keys, deterministic digests and Parquet, atomic writes."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from dynamics.io import (
    atomic_output,
    atomic_write_bytes,
    cache_key,
    parquet_bytes,
    strings_digest,
    table_digest,
    table_from_parquet_bytes,
)


def test_cache_keys_differ_by_cache_version_and_description_but_not_key_order() -> None:
    key = cache_key("data", 1, {"a": 1, "b": [2]})
    assert len(key) == 20 and key == cache_key("data", 1, {"b": [2], "a": 1})
    assert len({key, cache_key("embeddings", 1, {"a": 1, "b": [2]}), cache_key("data", 2, {"a": 1, "b": [2]})}) == 3
    assert key != cache_key("data", 1, {"a": 1, "b": [3]})


def test_strings_digest_sees_boundaries_between_texts() -> None:
    assert strings_digest(["ab", "c"]) != strings_digest(["a", "bc"])
    assert strings_digest(["ab", "c"]) == strings_digest(iter(["ab", "c"]))


def test_table_digest_and_parquet_bytes_depend_only_on_content() -> None:
    table = pa.table({"id": ["a", "b"], "x": [1, 2]})
    rechunked = pa.concat_tables([table.slice(0, 1), table.slice(1)])
    assert table_digest(table) == table_digest(rechunked)
    assert table_digest(table) != table_digest(table.slice(0, 1))
    assert parquet_bytes(table) == parquet_bytes(rechunked)
    assert table_from_parquet_bytes(parquet_bytes(table)).equals(table)


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "entry.bin"
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write(b"half")
        raise RuntimeError("writer died")
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_concurrent_writers_never_expose_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "entry.bin"
    payloads = [bytes([k]) * 2_000_000 for k in range(4)]
    seen: list[bytes] = []
    done = threading.Event()

    def read_while_writing() -> None:
        while not done.is_set():
            if target.exists():
                seen.append(target.read_bytes())

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    writers = [threading.Thread(target=atomic_write_bytes, args=(target, payload)) for payload in payloads * 3]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join()
    assert target.read_bytes() in payloads
    assert all(content in payloads for content in seen)  # whole payloads only, never a mix or a prefix
    assert [path.name for path in tmp_path.iterdir()] == ["entry.bin"]
