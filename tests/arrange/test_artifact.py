"""The arrangement artifact on disk: a hit is verified against its content hash, a damaged folder is moved
aside whole and rebuilt byte-identical, an unfinished one is a plain miss."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dynamics.arrange.artifact import (
    ArrangementRef,
    order_table,
    read_cached,
    verify_arrangement,
    write_arrangement,
)

DESCRIPTION = {"train_pool": "p", "test": "t", "volume": 5, "ordering": "nft", "seed": 0, "arrange": {"w_min": 1.0}}


def _table():
    rng = np.random.default_rng(0)
    ad, md = rng.random(5).astype(np.float32), rng.random(5).astype(np.float32)
    return order_table([f"i{k}" for k in range(5)], ["a", "a", "b", "b", "c"], ad, md, ad + md, np.arange(5)[::-1])


def _write(root: Path) -> ArrangementRef:
    return write_arrangement(_table(), DESCRIPTION, root, derived={"w_min": 1.0, "w_avg": 0.5})


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _truncate_order(folder: Path) -> None:
    order = folder / "order.parquet"
    order.write_bytes(order.read_bytes()[:-10])


def _flip_order_byte(folder: Path) -> None:
    order = folder / "order.parquet"
    data = bytearray(order.read_bytes())
    data[len(data) // 2] ^= 0x01
    order.write_bytes(bytes(data))


def _truncate_meta(folder: Path) -> None:
    meta = folder / "arrangement.json"
    meta.write_bytes(meta.read_bytes()[:40])


def _edit_derived(folder: Path) -> None:
    meta_path = folder / "arrangement.json"
    meta = json.loads(meta_path.read_text())
    meta["derived"]["w_avg"] = 0.75
    meta_path.write_text(json.dumps(meta))


def _drop_order(folder: Path) -> None:
    (folder / "order.parquet").unlink()


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "order truncated": (_truncate_order, "truncated or changed"),
    "order byte changed": (_flip_order_byte, "truncated or changed"),
    "arrangement.json truncated": (_truncate_meta, "arrangement.json is unreadable"),
    "derived edited": (_edit_derived, "truncated or changed"),
    "order deleted": (_drop_order, "order.parquet is unreadable"),
}


def test_an_intact_artifact_is_a_hit_and_holds_only_its_two_files(tmp_path: Path) -> None:
    written = _write(tmp_path)
    assert read_cached(DESCRIPTION, tmp_path) == written
    assert verify_arrangement(Path(written.folder), DESCRIPTION) is None
    assert sorted(_files(Path(written.folder))) == ["arrangement.json", "order.parquet"]  # all of it is logged
    assert read_cached({**DESCRIPTION, "seed": 1}, tmp_path) is None


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_artifact_is_moved_aside_whole_and_rebuilt_byte_identical(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    spoil, expected = DAMAGES[damage]
    written = _write(tmp_path)
    folder = Path(written.folder)
    original = _files(folder)
    spoil(folder)
    spoilt = _files(folder)
    found = verify_arrangement(folder, DESCRIPTION)
    assert found is not None and expected in found.problem

    with caplog.at_level(logging.WARNING, logger="dynamics.io"):
        assert read_cached(DESCRIPTION, tmp_path) is None
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(folder) in warning and expected in warning
    assert not folder.exists()
    (moved,) = (tmp_path / "damaged").iterdir()
    assert moved.name.startswith(folder.name + ".") and _files(moved) == spoilt and str(moved) in warning

    assert _write(tmp_path) == written  # the stage's rebuild
    assert _files(folder) == original and read_cached(DESCRIPTION, tmp_path) == written


def test_an_artifact_filed_under_another_key_is_damage(tmp_path: Path) -> None:
    other = _write(tmp_path)
    impostor = tmp_path / "impostor"
    Path(other.folder).rename(impostor)
    found = verify_arrangement(impostor, {**DESCRIPTION, "seed": 3})
    assert found is not None and "another arrangement" in found.problem


def test_an_unfinished_artifact_is_a_plain_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = Path(_write(tmp_path).folder)
    (folder / "arrangement.json").unlink()  # the writer died before publishing its marker
    with caplog.at_level(logging.WARNING):
        assert read_cached(DESCRIPTION, tmp_path) is None
    assert caplog.records == [] and (folder / "order.parquet").exists()
    assert read_cached(DESCRIPTION, tmp_path) is None
    _write(tmp_path)
    assert read_cached(DESCRIPTION, tmp_path) is not None
