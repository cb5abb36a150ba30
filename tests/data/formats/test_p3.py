"""Tests for the `p3` format on fixtures in both of its layouts (no real sample is available offline).

Run: `python -m pytest -q tests/data/formats/test_p3.py`
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

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
from dynamics.data.problems import DataError
from dynamics.data.schema import CANONICAL_SCHEMA
from dynamics.data.sources import load_examples

HELD_OUT = ["super_glue_cb", "story_cloze"]

_load = partial(load_format, "p3")


def _native(task: str, index: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "inputs_pretokenized": f"Premise {index} for {task}. Is it true?",
        "targets_pretokenized": "yes" if index % 2 else "no",
        "task_name": task,
    }
    record.update(fields)
    return record


def _reformatted(index: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "prompt": f"Summarise passage {index}:\n",
        "completion": f" Summary {index}.<|endoftext|>",
    }
    record.update(fields)
    return record


def test_both_layouts_load_through_load_examples(tmp_path: Path) -> None:
    folder = tmp_path / "p3"
    (folder / "data_per_template").mkdir(parents=True)
    native = [_native("super_glue_cb_can_we_infer", 0), _native("super_glue_cb_can_we_infer", 1)]
    _jsonl(folder / "native.jsonl", [*native, _native("super_glue_cbx_other", 2)])
    _jsonl(folder / "data_per_template" / "xsum_summarize_this.jsonl", [_reformatted(0), _reformatted(1)])
    config = DataConfig(source="p3", path=str(folder), options={"test_tasks": HELD_OUT})
    table = load_examples(config, seed=0)
    assert table.schema == CANONICAL_SCHEMA
    rows = table.to_pylist()
    # Sorted file order: data_per_template/…, then native.jsonl.
    assert [row["id"] for row in rows] == [
        "p3-xsum_summarize_this-0",
        "p3-xsum_summarize_this-1",
        "p3-native-0",
        "p3-native-1",
        "p3-native-2",
    ]
    tasks = ["xsum_summarize_this"] * 2 + ["super_glue_cb_can_we_infer"] * 2 + ["super_glue_cbx_other"]
    assert [row["task"] for row in rows] == tasks
    # A held-out name covers its prompts ("super_glue_cb_…") but not a longer dataset name ("super_glue_cbx").
    assert [row["split"] for row in rows] == ["train", "train", "test", "test", "train"]
    assert all(row["category"] == row["task"] and row["source"] == "p3" for row in rows)
    assert rows[0]["messages"] == [
        {"role": "user", "content": "Summarise passage 0:\n"},
        {"role": "assistant", "content": " Summary 0."},
    ]
    assert rows[0]["references"] == [" Summary 0."] and rows[0]["answer"] == " Summary 0."
    assert rows[3]["messages"][0]["content"] == "Premise 1 for super_glue_cb_can_we_infer. Is it true?"
    assert rows[3]["references"] == ["yes"]


def test_without_held_out_tasks_every_row_is_train(tmp_path: Path) -> None:
    rows, _ = _load(_jsonl(tmp_path / "p3.jsonl", [_native("anli_r1", 0), _native("super_glue_cb", 1)]))
    assert {row["split"] for _, _, row in rows} == {"train"}


def test_task_field_option(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p3.jsonl", [_native("ignored", 0, template="hellaswag_complete")])
    rows, _ = _load(path, task_field="template", test_tasks=["hellaswag"])
    assert (rows[0][2]["task"], rows[0][2]["split"]) == ("hellaswag_complete", "test")


def test_completion_without_end_marker_is_kept_whole(tmp_path: Path) -> None:
    rows, _ = _load(_jsonl(tmp_path / "t.jsonl", [_reformatted(0, completion="Plain.")]))
    assert rows[0][2]["references"] == ["Plain."]


BAD_RECORDS = {
    "missing target": ({"inputs_pretokenized": "q", "task_name": "t"}, "targets_pretokenized", "missing"),
    "missing input": ({"targets_pretokenized": "a", "task_name": "t"}, "inputs_pretokenized", "missing"),
    "missing task name": (_native("t", 9, task_name=None), "task_name", "missing"),
    "task name not a string": (_native("t", 9, task_name=4), "task_name", "expected a non-empty task name"),
    "input not a string": (_native("t", 9, inputs_pretokenized=["q"]), "inputs_pretokenized", "expected str"),
    "empty target": (_native("t", 9, targets_pretokenized=" "), "targets_pretokenized", "empty"),
    "empty completion": (_reformatted(9, completion="<|endoftext|>"), "completion", "empty"),
    "completion not a string": (_reformatted(9, completion=1), "completion", "expected str, got int"),
    "neither layout": ({"text": "hello"}, "inputs_pretokenized", "missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_strict_names_file_row_and_field(tmp_path: Path, case: str) -> None:
    record, field, message = BAD_RECORDS[case]
    check_bad_record_named(_load, _jsonl(tmp_path / "p3.jsonl", [_native("t", 0), record]), field, message)


def test_bad_records_lenient_are_skipped_and_each_recorded(tmp_path: Path) -> None:
    compact = partial(write_json, indent=None)
    path = tmp_path / "p3.json"
    rows = load_bad_records_leniently(_load, path, _native("t", 0), BAD_RECORDS, _native("t", 1), write=compact)
    assert [row["id"] for _, _, row in rows] == ["p3-p3-0", f"p3-p3-{len(BAD_RECORDS) + 1}"]


def test_truncated_line_is_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "xsum_summarize_this.jsonl"
    line = json.dumps(_reformatted(0))
    path.write_text(line + "\n" + line[:-10] + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"xsum_summarize_this.jsonl: line 2: truncated or malformed JSON line"):
        _load(path)


def test_listing_order_does_not_change_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def records(name: str) -> list[Any]:
        return [_reformatted(len(name)), _native("super_glue_cb_x", len(name))]

    names = ("anli_a.jsonl", "cb_b.jsonl")
    expected = load_in_both_listing_orders(
        _load, tmp_path, monkeypatch, names, records, write=_jsonl, test_tasks=HELD_OUT
    )
    assert [row["task"] for row in expected] == ["anli_a", "super_glue_cb_x", "cb_b", "super_glue_cb_x"]


def test_held_out_entries_that_match_no_task_are_reported(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p3.jsonl", [_native("super_glue_cb_can_we_infer", 0), _native("xsum_summarize", 1)])
    rows, log = _load(path, test_tasks=["super_glue_cb", "story_cloze"])
    assert [row["split"] for _, _, row in rows] == ["test", "train"]
    [problem] = log.left_out
    assert (problem.file, problem.where) == (str(path), "")
    assert "options.test_tasks entry 'story_cloze' matches no task" in problem.message
