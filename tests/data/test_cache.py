"""The normalised-data cache: a second load is a hit, a changed source file is a miss, a damaged entry is rebuilt."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dynamics.config import DataConfig
from dynamics.data.sources import load_data
from dynamics.io import sidecar_path


def _row(index: int, split: str, task: str) -> dict:
    return {
        "id": f"c/{index}",
        "source": "local",
        "task": task,
        "category": task,
        "split": split,
        "messages": [{"role": "user", "content": f"q{index}"}, {"role": "assistant", "content": f"a{index}"}],
        "references": [f"a{index}"],
    }


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_second_load_hits_and_a_changed_file_misses(tmp_path: Path) -> None:
    source = tmp_path / "data.jsonl"
    _write(source, [_row(0, "train", "t"), _row(1, "test", "u")])
    config = DataConfig(source="canonical", path=str(source))
    cache = tmp_path / "cache"

    first = load_data(config, seed=0, cache_dir=cache)
    second = load_data(config, seed=0, cache_dir=cache)
    assert not first.cache_hit and second.cache_hit
    assert first.cache_path == second.cache_path and second.cache_path.exists()
    assert second.table.equals(first.table)

    _write(source, [_row(0, "train", "t"), _row(1, "test", "u"), _row(2, "train", "t")])
    third = load_data(config, seed=0, cache_dir=cache)
    assert not third.cache_hit and third.cache_path != first.cache_path
    assert third.table.num_rows == 3

    other_seed = load_data(config, seed=1, cache_dir=cache)
    assert not other_seed.cache_hit


def test_cached_parquet_bytes_are_identical_across_fresh_caches(tmp_path: Path) -> None:
    source = tmp_path / "data.jsonl"
    _write(source, [_row(i, "train" if i % 3 else "test", "t" if i % 3 else "u") for i in range(30)])
    config = DataConfig(source="canonical", path=str(source))
    a = load_data(config, seed=0, cache_dir=tmp_path / "a").cache_path
    b = load_data(config, seed=0, cache_dir=tmp_path / "b").cache_path
    assert a.name == b.name and a.read_bytes() == b.read_bytes()


def test_editing_a_file_named_in_the_options_is_a_miss(tmp_path: Path) -> None:
    data = tmp_path / "flan.json"
    turns = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "r"}]
    records = [{"id": name, "source": f"task_{name}", "conversations": turns} for name in ("a", "b")]
    data.write_text(json.dumps(records))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train_key_list": ["task_a"], "eval_key_list": ["task_b"]}))
    config = DataConfig(source="flan_mini", path=str(data), options={"split_file": str(split)})
    cache = tmp_path / "cache"
    assert not load_data(config, seed=0, cache_dir=cache).cache_hit
    assert load_data(config, seed=0, cache_dir=cache).cache_hit
    split.write_text(json.dumps({"train_key_list": ["task_a", "task_c"], "eval_key_list": ["task_b"]}))
    assert not load_data(config, seed=0, cache_dir=cache).cache_hit


def test_a_generated_source_is_not_cached(tmp_path: Path) -> None:
    # The built-in rows are a function of code, which no cache key covers: they are regenerated, never read back.
    config = DataConfig(source="builtin", options={"per_train_task": 2, "per_test_task": 1})
    first = load_data(config, seed=0, cache_dir=tmp_path / "cache")
    assert first.cache_path is None and not first.cache_hit
    assert not (tmp_path / "cache").exists()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _drop_sidecar(path: Path) -> None:
    sidecar_path(path).unlink()


DAMAGES = {
    "truncated": (_truncate, "truncated"),
    "one byte changed": (_flip_one_byte, "bytes changed in place"),
    "sidecar deleted": (_drop_sidecar, "no sidecar"),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_entry_is_moved_aside_and_rebuilt_byte_identical(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    spoil, expected = DAMAGES[damage]
    source = tmp_path / "data.jsonl"
    _write(source, [_row(i, "train" if i % 3 else "test", "t" if i % 3 else "u") for i in range(30)])
    config = DataConfig(source="canonical", path=str(source))
    cache = tmp_path / "cache"
    first = load_data(config, seed=0, cache_dir=cache)
    written = first.cache_path.read_bytes()
    spoil(first.cache_path)

    with caplog.at_level(logging.WARNING, logger="dynamics.io"):
        second = load_data(config, seed=0, cache_dir=cache)
    assert not second.cache_hit and second.table.equals(first.table)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(first.cache_path) in warning and expected in warning
    (moved,) = (cache / "damaged").iterdir()
    assert moved.name.startswith(first.cache_path.name + ".") and str(moved) in warning
    assert second.cache_path == first.cache_path and second.cache_path.read_bytes() == written
    assert load_data(config, seed=0, cache_dir=cache).cache_hit


def test_a_cache_hit_is_the_same_table_as_the_miss_to_the_last_schema_detail(tmp_path: Path) -> None:
    from dynamics.io import table_digest

    source = tmp_path / "data.jsonl"
    _write(source, [_row(0, "train", "t"), _row(1, "test", "u")])
    config = DataConfig(source="canonical", path=str(source))
    miss = load_data(config, seed=0, cache_dir=tmp_path / "cache")
    hit = load_data(config, seed=0, cache_dir=tmp_path / "cache")
    assert hit.cache_hit and hit.table.schema == miss.table.schema  # list children keep Arrow's names
    assert table_digest(hit.table) == table_digest(miss.table)  # so arrangement keys do not change on a hit
