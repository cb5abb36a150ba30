"""Tests for the `alpaca` format, on the shared real sample and on small fixtures written here.

Run: `python -m pytest -q tests/data/formats/test_alpaca.py`
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from format_helpers import (
    SHARED_DATA,
    check_bad_record_named,
    load_bad_records_leniently,
    load_format,
    load_in_both_listing_orders,
)
from format_helpers import write_json as _write

from dynamics.data.schema import CANONICAL_SCHEMA, to_table

SAMPLE = SHARED_DATA / "alpaca-sample"
SAMPLE_FILE = SAMPLE / "alpaca_plus_sample.json"
needs_sample = pytest.mark.skipif(not SAMPLE_FILE.is_file(), reason=f"real sample not present at {SAMPLE}")

_load = partial(load_format, "alpaca")


def _record(index: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "instruction": f"Double the number {index}.",
        "input": "",
        "output": str(2 * index),
    }
    record.update(fields)
    return record


@needs_sample
def test_real_sample_rows_keep_every_source_field() -> None:
    source = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    rows, log = _load(SAMPLE)
    assert not log.skipped
    assert len(rows) == len(source)
    for index, (file, where, row) in enumerate(rows):
        record = source[index]
        assert (file, where) == (str(SAMPLE_FILE), f"row {index + 1}")  # places count from 1
        assert row["id"] == f"alpaca-{index}"
        assert (row["source"], row["task"], row["category"], row["split"]) == ("alpaca", "alpaca", "alpaca", "train")
        assert [turn["role"] for turn in row["messages"]] == ["user", "assistant"]
        user, reply = (turn["content"] for turn in row["messages"])
        assert user.startswith(record["instruction"])
        assert reply == record["output"]
        assert row["references"] == [record["output"]] and row["answer"] == record["output"]
    assert to_table([row for _, _, row in rows], origin="sample").schema == CANONICAL_SCHEMA


@needs_sample
def test_real_sample_user_turn_is_instruction_then_input() -> None:
    source = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    rows = [row for _, _, row in _load(SAMPLE)[0]]
    with_input = next(i for i, r in enumerate(source) if r["input"].strip())
    without_input = next(i for i, r in enumerate(source) if not r["input"].strip())
    expected = source[with_input]["instruction"] + "\n\n" + source[with_input]["input"]
    assert rows[with_input]["messages"][0]["content"] == expected
    assert rows[without_input]["messages"][0]["content"] == source[without_input]["instruction"]


@needs_sample
def test_real_sample_ids_are_unique_and_stable() -> None:
    first = _load(SAMPLE)[0]
    ids = [row["id"] for _, _, row in first]
    assert len(set(ids)) == len(ids)
    assert _load(SAMPLE)[0] == first


def test_optional_fields_set_id_task_category_and_split(tmp_path: Path) -> None:
    records = [
        _record(0),
        _record(1, id="own-id", input="Show your work."),
        _record(2, category="arithmetic"),
        _record(3, task="doubling", category="arithmetic"),
        _record(4, task="doubling"),
        _record(5, input=None),
        _record(6, input="   "),
    ]
    rows = [row for _, _, row in _load(_write(tmp_path / "data.json", records), split="test")[0]]
    assert [row["id"] for row in rows] == ["alpaca-0", "own-id"] + [f"alpaca-{i}" for i in range(2, 7)]
    assert [(row["task"], row["category"]) for row in rows] == [
        ("alpaca", "alpaca"),
        ("alpaca", "alpaca"),
        ("arithmetic", "arithmetic"),
        ("doubling", "arithmetic"),
        ("doubling", "doubling"),
        ("alpaca", "alpaca"),
        ("alpaca", "alpaca"),
    ]
    assert rows[1]["messages"][0]["content"] == "Double the number 1.\n\nShow your work."
    assert rows[5]["messages"][0]["content"] == "Double the number 5."
    assert rows[6]["messages"][0]["content"] == "Double the number 6."
    assert {row["split"] for row in rows} == {"test"}


def test_ids_count_over_the_whole_source(tmp_path: Path) -> None:
    _write(tmp_path / "part1.json", [_record(0), _record(1)])
    _write(tmp_path / "part2.json", [_record(2)])
    assert [row["id"] for _, _, row in _load(tmp_path)[0]] == ["alpaca-0", "alpaca-1", "alpaca-2"]


BAD_RECORDS = {
    "missing output": ({"instruction": "Say hi.", "input": ""}, "output", "missing"),
    "empty output": (_record(9, output=""), "output", "empty"),
    "blank output": (_record(9, output="  \n"), "output", "empty"),
    "missing instruction": ({"input": "", "output": "hi"}, "instruction", "missing"),
    "instruction not a string": (_record(9, instruction=["Say", "hi"]), "instruction", "expected str, got list"),
    "input not a string": (_record(9, input=3), "input", "expected str, got int"),
    "id not a string": (_record(9, id=4), "id", "expected str, got int"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_strict_names_file_row_and_field(tmp_path: Path, case: str) -> None:
    record, field, message = BAD_RECORDS[case]
    check_bad_record_named(_load, _write(tmp_path / "data.json", [_record(0), record]), field, message)


def test_bad_records_lenient_are_skipped_and_each_recorded(tmp_path: Path) -> None:
    rows = load_bad_records_leniently(_load, tmp_path / "data.json", _record(0), BAD_RECORDS, _record(1))
    # Ids follow the record's place in the source, so skipping a bad record does not shift later ids.
    assert [row["id"] for _, _, row in rows] == ["alpaca-0", f"alpaca-{len(BAD_RECORDS) + 1}"]


def test_listing_order_does_not_change_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def records(name: str) -> list[Any]:
        return [_record(ord(name[0])), _record(0, id=f"own-{name}")]

    expected = load_in_both_listing_orders(_load, tmp_path, monkeypatch, ("a.json", "b.json"), records)
    assert [row["id"] for row in expected] == ["alpaca-0", "own-a.json", "alpaca-2", "own-b.json"]
