"""Tests for the `flan_mini` format on fixtures in its native layout (no real sample is available offline).

Run: `python -m pytest -q tests/data/formats/test_flan_mini.py`
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from format_helpers import (
    check_bad_record_named,
    check_options,
    load_bad_records_leniently,
    load_format,
    load_in_both_listing_orders,
)
from format_helpers import write_json as _write

from dynamics.config import DataConfig
from dynamics.data.problems import DataError
from dynamics.data.schema import CANONICAL_SCHEMA
from dynamics.data.sources import load_examples

TASKS = {"train": ["task_sum_digits", "cola:1.0.0"], "test": ["task_reverse_word"]}

_load = partial(load_format, "flan_mini")


def _turn(speaker: str, text: str) -> dict[str, str]:
    return {"from": speaker, "value": text}


def _record(task: str, index: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"flan_{task}_{index}",
        "source": task,
        "conversations": [
            _turn("human", f"Question {index} of {task}?"),
            _turn("gpt", f"Answer {index}."),
            _turn("human", "Why?"),
            _turn("gpt", "Because."),
        ],
    }
    record.update(fields)
    return record


def _corpus(tmp_path: Path) -> Path:
    tasks = [*TASKS["train"], *TASKS["test"], "task_not_in_any_list"]
    return _write(tmp_path / "flan_mini.json", [_record(task, i) for i in range(2) for task in tasks])


def _task_files(tmp_path: Path) -> dict[str, str]:
    for split, tasks in TASKS.items():
        (tmp_path / f"{split}_tasks.txt").write_text("\n".join(tasks) + "\n\n", encoding="utf-8")
    return {"train_tasks": str(tmp_path / "train_tasks.txt"), "test_tasks": str(tmp_path / "test_tasks.txt")}


def _split_file(tmp_path: Path, document: Any = None) -> str:
    path = tmp_path / "train_eval_key_list.json"
    default = {"train_key_list": TASKS["train"], "eval_key_list": TASKS["test"]}
    path.write_text(json.dumps(default if document is None else document), encoding="utf-8")
    return str(path)


def test_task_split_files_give_splits_through_load_examples(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _corpus(tmp_path)
    with caplog.at_level(logging.WARNING, logger="dynamics.data.sources"):  # what a load left out is logged
        table = load_examples(DataConfig(source="flan_mini", path=str(path), options=_task_files(tmp_path)), seed=0)
    assert table.schema == CANONICAL_SCHEMA
    rows = table.to_pylist()
    assert len(rows) == 6
    for row in rows:
        assert row["split"] == ("test" if row["task"] in TASKS["test"] else "train")
        assert row["category"] == row["task"] and row["source"] == "flan_mini"
        assert row["id"] == f"flan_{row['task']}_{row['messages'][0]['content'].split()[1]}"
        # The study's two turns: one question, one answer.
        assert [turn["role"] for turn in row["messages"]] == ["user", "assistant"]
        assert row["references"] == [row["messages"][1]["content"]] and row["answer"] == row["references"][0]
    assert "left out 2 record(s) of 1 task(s)" in caplog.text


def test_study_split_file_gives_the_same_rows(tmp_path: Path) -> None:
    path = _corpus(tmp_path)
    from_lists, _ = _load(path, **_task_files(tmp_path))
    from_json, _ = _load(path, split_file=_split_file(tmp_path))
    assert from_json == from_lists


def test_without_a_task_split_every_row_is_train(tmp_path: Path) -> None:
    rows, _ = _load(_corpus(tmp_path))
    assert len(rows) == 8 and {row["split"] for _, _, row in rows} == {"train"}


def test_max_turns_null_reads_the_whole_conversation(tmp_path: Path) -> None:
    rows, _ = _load(_write(tmp_path / "f.json", [_record("t", 0)]), max_turns=None)
    assert [turn["content"] for turn in rows[0][2]["messages"]] == [
        "Question 0 of t?",
        "Answer 0.",
        "Why?",
        "Because.",
    ]
    assert rows[0][2]["references"] == ["Because."]


def test_turns_past_max_turns_are_not_read(tmp_path: Path) -> None:
    record = _record("t", 0)
    record["conversations"][3] = _turn("narrator", 5)
    rows, _ = _load(_write(tmp_path / "f.json", [record]))
    assert rows[0][2]["messages"][1]["content"] == "Answer 0."


def test_record_without_id_gets_a_derived_one(tmp_path: Path) -> None:
    record = _record("t", 0)
    del record["id"]
    rows, _ = _load(_write(tmp_path / "part.json", [_record("t", 1), record]))
    assert [row["id"] for _, _, row in rows] == ["flan_t_1", "flan_mini-part-1"]


def test_split_options_are_checked() -> None:
    with pytest.raises(ValueError, match="either split_file or train_tasks/test_tasks"):
        check_options("flan_mini", split_file="s.json", train_tasks="t.txt")
    with pytest.raises(ValueError, match="train_tasks and test_tasks go together"):
        check_options("flan_mini", train_tasks="t.txt")
    with pytest.raises(ValueError, match="max_turns"):
        check_options("flan_mini", max_turns=0)


def test_task_in_both_lists_is_named(tmp_path: Path) -> None:
    split_file = _split_file(tmp_path, {"train_key_list": ["a", "b"], "eval_key_list": ["b"]})
    with pytest.raises(DataError, match=r"train_eval_key_list.json: task\(s\) in both the train and test lists: b"):
        _load(_corpus(tmp_path), split_file=split_file)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"train_key_list": ["a"]}, "field 'eval_key_list': expected a list of task names"),
        ({"train_key_list": "a", "eval_key_list": []}, "field 'train_key_list': expected a list of task names"),
        (["a"], "expected a JSON object, got list"),
    ],
)
def test_malformed_split_file_is_named(tmp_path: Path, document: Any, expected: str) -> None:
    split_file = _split_file(tmp_path, document)
    with pytest.raises(DataError) as caught:
        _load(_corpus(tmp_path), split_file=split_file)
    assert str(caught.value).startswith(split_file) and expected in str(caught.value)


def test_missing_task_list_file_is_named(tmp_path: Path) -> None:
    files = _task_files(tmp_path)
    files["test_tasks"] = str(tmp_path / "absent.txt")
    with pytest.raises(DataError, match="absent.txt: no such task list file"):
        _load(_corpus(tmp_path), **files)


BAD_RECORDS = {
    "missing source": ({k: v for k, v in _record("t", 9).items() if k != "source"}, "source", "missing"),
    "empty source": (_record("t", 9, source=""), "source", "empty"),
    "source not a string": (_record("t", 9, source=["t"]), "source", "expected str"),
    "missing conversations": ({"id": "x", "source": "t"}, "conversations", "missing"),
    "turn not an object": (_record("t", 9, conversations=["hello"]), "conversations[0]", "expected an object"),
    "value missing": (_record("t", 9, conversations=[{"from": "human"}]), "conversations[0].value", "missing"),
    "empty conversations": (_record("t", 9, conversations=[]), "conversations", "empty"),
    "no reply": (
        _record("t", 9, conversations=[_turn("human", "q"), _turn("human", "q2")]),
        "conversations",
        "no assistant reply",
    ),
    "unknown role": (
        _record("t", 9, conversations=[_turn("bard", "q"), _turn("gpt", "a")]),
        "conversations[0].from",
        "unknown role 'bard'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_strict_names_file_row_and_field(tmp_path: Path, case: str) -> None:
    record, field, message = BAD_RECORDS[case]
    check_bad_record_named(_load, _write(tmp_path / "f.json", [_record("t", 0), record]), field, message)


def test_bad_records_lenient_are_skipped_and_each_recorded(tmp_path: Path) -> None:
    rows = load_bad_records_leniently(_load, tmp_path / "f.json", _record("t", 0), BAD_RECORDS, _record("t", 1))
    assert [row["id"] for _, _, row in rows] == ["flan_t_0", "flan_t_1"]


def test_listing_order_does_not_change_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def records(name: str) -> list[Any]:
        return [_record(TASKS["train"][0], ord(name[0])), _record(TASKS["test"][0], ord(name[0]))]

    options = _task_files(tmp_path)
    expected = load_in_both_listing_orders(_load, tmp_path, monkeypatch, ("a.json", "b.json"), records, **options)
    assert [row["split"] for row in expected] == ["train", "test", "train", "test"]


# ---- edge cases: a BOM, tasks left out or missing -------------------------------------------------------------


def test_bom_task_lists_are_read_like_plain_ones(tmp_path: Path) -> None:
    path = _corpus(tmp_path)
    options = _task_files(tmp_path)
    expected, _ = _load(path, **options)
    for key in ("train_tasks", "test_tasks"):
        list_file = Path(options[key])
        list_file.write_bytes(b"\xef\xbb\xbf" + list_file.read_bytes())
    assert _load(path, **options)[0] == expected


def test_non_utf8_task_list_names_file_and_line(tmp_path: Path) -> None:
    options = _task_files(tmp_path)
    Path(options["test_tasks"]).write_bytes(b"task_reverse_word\ntask_\xff\n")
    with pytest.raises(DataError, match=r"test_tasks.txt: line 2: not valid UTF-8"):
        _load(_corpus(tmp_path), **options)


@pytest.mark.parametrize("layout", ["text lists", "split file"])
def test_unlisted_records_and_listed_tasks_without_records_are_reported(tmp_path: Path, layout: str) -> None:
    path = _corpus(tmp_path)
    TASKS_WITH_GAPS = {"train": [*TASKS["train"], "task_train_gone"], "test": [*TASKS["test"], "task_test_gone"]}
    if layout == "split file":
        document = {"train_key_list": TASKS_WITH_GAPS["train"], "eval_key_list": TASKS_WITH_GAPS["test"]}
        options = {"split_file": _split_file(tmp_path, document)}
        lists = {"train": (options["split_file"], "train_key_list"), "test": (options["split_file"], "eval_key_list")}
    else:
        options = _task_files(tmp_path)
        for split in ("train", "test"):
            Path(options[f"{split}_tasks"]).write_text("\n".join(TASKS_WITH_GAPS[split]) + "\n", encoding="utf-8")
        lists = {split: (options[f"{split}_tasks"], "") for split in ("train", "test")}
    rows, log = _load(path, **options)
    assert len(rows) == 6 and not log.skipped
    unlisted, *missing = log.left_out
    assert (unlisted.file, unlisted.field) == (str(path), "source")
    assert "left out 2 record(s) of 1 task(s) in neither the train nor the test list: task_not_in_any_list" in str(
        unlisted
    )
    assert [(p.file, p.field) for p in missing] == [lists["train"], lists["test"]]
    assert "train task 'task_train_gone' is listed but has no records" in missing[0].message
    assert "test task 'task_test_gone' is listed but has no records" in missing[1].message
    assert "the test split lacks it" in missing[1].message


def test_complete_task_lists_leave_nothing_out(tmp_path: Path) -> None:
    records = [_record(task, 0) for task in [*TASKS["train"], *TASKS["test"]]]
    _, log = _load(_write(tmp_path / "f.json", records), **_task_files(tmp_path))
    assert log.left_out == []
