"""Bytes on disk (dynamics.io): versioned cache keys, deterministic digests and Parquet, atomic and verified writes."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dynamics.io import (
    atomic_output,
    atomic_write_bytes,
    cache_key,
    open_verified,
    parquet_bytes,
    read_verified,
    sidecar_path,
    strings_digest,
    table_digest,
    table_from_parquet_bytes,
    verified_output,
    verify_entry,
    write_verified,
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


# --- verified entries ------------------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_sidecar(path: Path) -> None:
    sidecar_path(path).unlink()


def _garble_sidecar(path: Path) -> None:
    sidecar_path(path).write_text('{"size": 3')


DAMAGES = {
    "truncated": (_truncate, "were written (truncated"),
    "one byte changed": (_flip_one_byte, "bytes changed in place"),
    "sidecar deleted": (_drop_sidecar, "no sidecar entry.bin.sha256.json"),
    "sidecar garbled": (_garble_sidecar, "sidecar entry.bin.sha256.json is unreadable"),
}


def test_a_verified_entry_reads_back_with_its_sidecar_published(tmp_path: Path) -> None:
    path = write_verified(tmp_path / "entry.bin", b"payload" * 1000)
    record = json.loads(sidecar_path(path).read_text())
    assert record == {"sha256": hashlib.sha256(b"payload" * 1000).hexdigest(), "size": 7000}
    assert read_verified(path) == b"payload" * 1000 and verify_entry(path) is None
    assert read_verified(tmp_path / "absent.bin") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.bin", "entry.bin.sha256.json"]


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_entry_is_named_moved_aside_and_a_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    spoil, expected = DAMAGES[damage]
    path = write_verified(tmp_path / "entry.bin", bytes(range(256)) * 100)
    spoil(path)
    spoilt = path.read_bytes()
    found = verify_entry(path)
    assert found is not None and expected in found.problem and path.exists()  # verify_entry only looks
    with caplog.at_level(logging.WARNING, logger="dynamics.io"):
        assert read_verified(path) is None
    assert not path.exists()
    (moved,) = (tmp_path / "damaged").iterdir()
    assert moved.name.startswith("entry.bin.") and moved.read_bytes() == spoilt  # kept for a person to see
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning and expected in warning and str(moved) in warning
    write_verified(path, bytes(range(256)) * 100)  # the caller's rebuild
    assert read_verified(path) == bytes(range(256)) * 100


def test_a_streamed_entry_has_the_bytes_and_sidecar_of_a_whole_write(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).standard_normal((300, 7)).astype(np.float32)
    with verified_output(tmp_path / "v.npy") as handle:
        np.save(handle, vectors)
    whole = io.BytesIO()
    np.save(whole, vectors)
    write_verified(tmp_path / "w.npy", whole.getvalue())
    assert (tmp_path / "v.npy").read_bytes() == whole.getvalue()
    assert sidecar_path(tmp_path / "v.npy").read_bytes() == sidecar_path(tmp_path / "w.npy").read_bytes()
    with open_verified(tmp_path / "v.npy") as handle:
        assert handle is not None and np.array_equal(np.load(handle), vectors)


def test_a_failed_verified_write_publishes_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), verified_output(tmp_path / "entry.bin") as handle:
        handle.write(b"half")
        raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []


def test_an_entry_replaced_while_open_is_read_as_the_bytes_that_were_checked(tmp_path: Path) -> None:
    path = write_verified(tmp_path / "entry.bin", b"a" * 5000)
    with open_verified(path) as handle:
        assert handle is not None
        write_verified(path, b"b" * 3000)  # another writer publishes meanwhile
        assert handle.read() == b"a" * 5000
    assert read_verified(path) == b"b" * 3000
