"""Tests for the `dolly` format (databricks-dolly-15k's layout), on small fixtures written here.

Run: `python -m pytest -q tests/data/formats/test_dolly.py`
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
from format_helpers import check_bad_record_named, check_options, load_bad_records_leniently, load_format, write_json
from format_helpers import write_jsonl as _write

from dynamics.config import DataConfig
from dynamics.data.schema import CANONICAL_SCHEMA
from dynamics.data.sources import load_examples

_load = partial(load_format, "dolly")


def _record(index: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "instruction": f"When was city {index} founded?",
        "context": f"City {index} was founded in {1000 + index}.",
        "response": str(1000 + index),
        "category": "closed_qa",
    }
    record.update(fields)
    return record


def test_instruction_then_context_and_the_category_as_task(tmp_path: Path) -> None:
    records = [_record(0), _record(1, context="", category="open_qa"), _record(2, context="  ")]
    rows = [row for _, _, row in _load(_write(tmp_path / "dolly.jsonl", records))[0]]
    assert [row["id"] for row in rows] == ["dolly-0", "dolly-1", "dolly-2"]
    assert rows[0]["messages"] == [
        {"role": "user", "content": "When was city 0 founded?\n\nCity 0 was founded in 1000."},
        {"role": "assistant", "content": "1000"},
    ]
    assert rows[1]["messages"][0]["content"] == "When was city 1 founded?"
    assert rows[2]["messages"][0]["content"] == "When was city 2 founded?"
    assert [(row["task"], row["category"], row["split"]) for row in rows] == [
        ("closed_qa", "closed_qa", "train"), ("open_qa", "open_qa", "train"), ("closed_qa", "closed_qa", "train"),
    ]  # fmt: skip
    assert rows[0]["references"] == ["1000"] and rows[0]["answer"] == "1000"


def test_test_categories_hold_whole_categories_out(tmp_path: Path) -> None:
    records = [_record(0), _record(1, category="summarization"), _record(2, category="brainstorming")]
    path = _write(tmp_path / "dolly.jsonl", records)
    config = DataConfig(source="dolly", path=str(path), options={"test_categories": ["summarization"]})
    table = load_examples(config, seed=0)
    assert table.schema == CANONICAL_SCHEMA
    assert dict(zip(table.column("task").to_pylist(), table.column("split").to_pylist(), strict=True)) == {
        "closed_qa": "train", "summarization": "test", "brainstorming": "train",
    }  # fmt: skip


BAD_RECORDS = {
    "missing response": ({"instruction": "Hi?", "context": "", "category": "open_qa"}, "response", "missing"),
    "blank response": (_record(9, response=" \n"), "response", "empty"),
    "missing instruction": ({"response": "hi", "category": "open_qa"}, "instruction", "missing"),
    "missing category": ({"instruction": "Hi?", "response": "hi"}, "category", "missing"),
    "context not a string": (_record(9, context=["a"]), "context", "expected str, got list"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_strict_names_file_row_and_field(tmp_path: Path, case: str) -> None:
    record, field, message = BAD_RECORDS[case]
    check_bad_record_named(_load, write_json(tmp_path / "dolly.json", [_record(0), record]), field, message)


def test_bad_records_lenient_are_skipped_and_each_recorded(tmp_path: Path) -> None:
    rows = load_bad_records_leniently(_load, tmp_path / "dolly.json", _record(0), BAD_RECORDS, _record(1))
    assert [row["id"] for _, _, row in rows] == ["dolly-0", f"dolly-{len(BAD_RECORDS) + 1}"]


def test_unknown_option_names_the_closest() -> None:
    with pytest.raises(ValueError, match="options.test_category: .*did you mean 'test_categories'"):
        check_options("dolly", test_category=["open_qa"])


def test_held_out_categories_that_the_data_lacks_are_reported(tmp_path: Path) -> None:
    path = _write(tmp_path / "dolly.jsonl", [_record(0), _record(1, category="summarization")])
    rows, log = _load(path, test_categories=["summarization", "brainstorm"])
    assert [row["split"] for _, _, row in rows] == ["train", "test"]
    [problem] = log.left_out
    assert problem.file == str(path) and "options.test_categories entry 'brainstorm' is no category" in problem.message
