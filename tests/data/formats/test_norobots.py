"""Tests for the `norobots` format on fixtures in its native layout (no real sample is available offline).

Run: `python -m pytest -q tests/data/formats/test_norobots.py`
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from format_helpers import (
    check_bad_record_named,
    load_bad_records_leniently,
    load_format,
    load_in_both_listing_orders,
    write_json,
)
from format_helpers import write_jsonl as _jsonl

from dynamics.config import DataConfig
from dynamics.data.formats.norobots import split_from_name
from dynamics.data.problems import DataError
from dynamics.data.schema import CANONICAL_SCHEMA
from dynamics.data.sources import load_examples

_load = partial(load_format, "norobots")


def _message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def _record(key: str, category: str = "Generation", **fields: Any) -> dict[str, Any]:
    question = f"Write one line about the colour {key}."
    record: dict[str, Any] = {
        "prompt": question,
        "prompt_id": f"id-{key}",
        "messages": [_message("user", question), _message("assistant", f"The colour {key} is calm.")],
        "category": category,
    }
    record.update(fields)
    return record


def _split_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "no_robots"
    folder.mkdir()
    chat = _record("teal", "Chat")
    chat["messages"] += [_message("user", "And in French?"), _message("assistant", "Bleu sarcelle.")]
    _jsonl(folder / "train_sft.jsonl", [_record("red"), _record("blue", "Brainstorm"), chat])
    test_rows = [_record("green", "Closed QA"), _record("amber", "Closed QA")]
    pq.write_table(pa.Table.from_pylist(test_rows), folder / "test_sft.parquet")
    return folder


def test_folder_of_split_files_loads_through_load_examples(tmp_path: Path) -> None:
    folder = _split_folder(tmp_path)
    table = load_examples(DataConfig(source="norobots", path=str(folder)), seed=0)
    assert table.schema == CANONICAL_SCHEMA
    rows = table.to_pylist()
    # Files are read in sorted order: test_sft.parquet, then train_sft.jsonl.
    assert [row["id"] for row in rows] == ["id-green", "id-amber", "id-red", "id-blue", "id-teal"]
    assert [row["split"] for row in rows] == ["test", "test", "train", "train", "train"]
    assert [row["task"] for row in rows] == ["Closed QA", "Closed QA", "Generation", "Brainstorm", "Chat"]
    assert all(row["category"] == row["task"] and row["source"] == "norobots" for row in rows)
    assert rows[2]["messages"] == _record("red")["messages"]
    assert rows[2]["references"] == ["The colour red is calm."] and rows[2]["answer"] == "The colour red is calm."
    assert [turn["role"] for turn in rows[4]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert rows[4]["references"] == ["Bleu sarcelle."]
    assert rows[0]["choices"] is None and rows[0]["question_format"] is None


def test_split_option_overrides_file_names(tmp_path: Path) -> None:
    rows, _ = _load(_split_folder(tmp_path), split="train")
    assert {row["split"] for _, _, row in rows} == {"train"}


@pytest.mark.parametrize(
    ("file", "location", "split"),
    [
        ("d/test_sft.jsonl", "d", "test"),
        ("d/train_sft.jsonl", "d", "train"),
        ("d/latest.jsonl", "d", "train"),
        ("d/test/part-0.jsonl", "d", "test"),
        ("d/Test-00000-of-00001.jsonl", "d", "test"),
        ("HuggingFaceH4/no_robots[test_sft]", "HuggingFaceH4/no_robots", "test"),
        ("HuggingFaceH4/no_robots[train]", "HuggingFaceH4/no_robots", "train"),
        ("someone/test-dataset[train]", "someone/test-dataset", "train"),
    ],
)
def test_split_follows_the_word_test_in_file_or_hub_split_names(
    tmp_path: Path, file: str, location: str, split: str
) -> None:
    if "[" not in file:
        path = tmp_path / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        file, location = str(path), str(tmp_path / location)
    assert split_from_name(file, location) == split


def test_a_single_file_is_named_by_its_own_name(tmp_path: Path) -> None:
    # pytest's tmp_path holds "test_..." folders: only the file's own name may count.
    path = _jsonl(tmp_path / "norobots.jsonl", [_record("red")])
    assert "test" in str(tmp_path)
    assert _load(path)[0][0][2]["split"] == "train"


def test_system_turn_is_dropped_or_kept(tmp_path: Path) -> None:
    record = _record("red")
    record["messages"].insert(0, _message("system", "You are a poet."))
    path = _jsonl(tmp_path / "train.jsonl", [record])
    assert _load(path)[0][0][2]["messages"][0]["content"] == "Write one line about the colour red."
    kept = _load(path, keep_system=True)[0][0][2]["messages"][0]["content"]
    assert kept == "You are a poet.\n\nWrite one line about the colour red."


def test_duplicate_prompt_ids_are_named_with_both_places(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    _jsonl(folder / "train.jsonl", [_record("red"), _record("blue")])
    _jsonl(folder / "test.jsonl", [_record("green", "Closed QA"), _record("red", "Closed QA")])
    with pytest.raises(DataError) as caught:
        load_examples(DataConfig(source="norobots", path=str(folder)), seed=0)
    message = str(caught.value)
    assert f"{folder / 'train.jsonl'}: row 1: field 'id': duplicate id 'id-red'" in message
    assert f"(first at {folder / 'test.jsonl'}: row 2)" in message


BAD_RECORDS = {
    "missing prompt_id": ({k: v for k, v in _record("x").items() if k != "prompt_id"}, "prompt_id", "missing"),
    "category not a string": (_record("x", category=3), "category", "expected str, got int"),
    "messages not a list": (_record("x", messages={"role": "user"}), "messages", "expected a list"),
    "content not a string": (
        _record("x", messages=[_message("user", "q"), {"role": "assistant", "content": 1}]),
        "messages[1].content",
        "expected str, got int",
    ),
    "empty messages": (_record("x", messages=[]), "messages", "empty"),
    "no reply": (
        _record("x", messages=[_message("system", "s"), _message("user", "q")]),
        "messages",
        "no assistant reply",
    ),
    "unknown role": (
        _record("x", messages=[_message("user", "q"), _message("tool", "a")]),
        "messages[1].role",
        "unknown role 'tool'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_strict_names_file_row_and_field(tmp_path: Path, case: str) -> None:
    record, field, message = BAD_RECORDS[case]
    check_bad_record_named(_load, _jsonl(tmp_path / "train.jsonl", [_record("red"), record]), field, message)


def test_bad_records_lenient_are_skipped_and_each_recorded(tmp_path: Path) -> None:
    compact = partial(write_json, indent=None)
    path = tmp_path / "train.json"
    rows = load_bad_records_leniently(_load, path, _record("red"), BAD_RECORDS, _record("blue"), write=compact)
    assert [row["id"] for _, _, row in rows] == ["id-red", "id-blue"]


def test_listing_order_does_not_change_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def records(name: str) -> list[Any]:
        return [_record(f"{name}-1", name), _record(f"{name}-2", name)]

    names = ("train.jsonl", "test.jsonl")
    expected = load_in_both_listing_orders(_load, tmp_path, monkeypatch, names, records, write=_jsonl)
    assert [row["id"] for row in expected] == [f"id-{name}.jsonl-{i}" for name in ("test", "train") for i in (1, 2)]


def test_renamed_files_give_the_same_rows(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for folder, names in ((first, ("a_train.jsonl", "b_train.jsonl")), (second, ("b_train.jsonl", "a_train.jsonl"))):
        _jsonl(folder / names[0], [_record("red"), _record("blue")])
        _jsonl(folder / names[1], [_record("green")])
    by_id = [sorted((row for _, _, row in _load(folder)[0]), key=lambda row: row["id"]) for folder in (first, second)]
    assert by_id[0] == by_id[1]
