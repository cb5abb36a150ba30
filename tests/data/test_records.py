"""Tests for the raw record readers (dynamics.data.records): 1-based places and a tolerated UTF-8 BOM.

Places count from 1 like line numbers: "line N" is the file's Nth line, "row N" its Nth record.

Run: `python -m pytest -q tests/data/test_records.py`
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynamics.data.problems import DataError, ProblemLog
from dynamics.data.records import (
    BOM,
    iter_source,
    read_json_document,
    read_json_records,
    read_parquet_records,
    read_text_lines,
)

RECORDS = [{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "c", "n": 3}]


def _places(path: Path, lenient: bool = False) -> list[tuple[str, dict]]:
    return list(read_json_records(path, ProblemLog(lenient=lenient)))


def test_json_list_records_are_numbered_from_row_1(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps(RECORDS), encoding="utf-8")
    assert _places(path) == [("row 1", RECORDS[0]), ("row 2", RECORDS[1]), ("row 3", RECORDS[2])]


def test_a_json_list_element_that_is_no_object_is_named_by_its_row(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps([RECORDS[0], RECORDS[1], [1, 2]]), encoding="utf-8")
    with pytest.raises(DataError, match=r"list.json: row 3: expected a JSON object, got list"):
        _places(path)


def test_json_lines_are_numbered_by_line_counting_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_text(f"{json.dumps(RECORDS[0])}\n\n{json.dumps(RECORDS[1])}\n", encoding="utf-8")
    assert [where for where, _ in _places(path)] == ["line 1", "line 3"]


def test_parquet_rows_are_numbered_from_row_1(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), path)
    assert [where for where, _ in read_parquet_records(path)] == ["row 1", "row 2", "row 3"]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_records_read_through_datasets_are_numbered_from_row_1(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"records{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(RECORDS), path)
    elif suffix == ".json":
        path.write_text(json.dumps(RECORDS), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    sourced = list(iter_source(str(path), ProblemLog()))
    assert [(file, where, record["id"]) for file, where, record in sourced] == [
        (str(path), "row 1", "a"),
        (str(path), "row 2", "b"),
        (str(path), "row 3", "c"),
    ]


# ---- a UTF-8 byte order mark at the start of a file -----------------------------------------------------------


def _with_bom(path: Path, text: str) -> Path:
    path.write_bytes(BOM + text.encode("utf-8"))
    return path


def test_bom_json_lines_file_reads_like_one_without(tmp_path: Path) -> None:
    text = "".join(json.dumps(r) + "\n" for r in RECORDS)
    plain = tmp_path / "plain.jsonl"
    plain.write_text(text, encoding="utf-8")
    assert _places(_with_bom(tmp_path / "bom.jsonl", text)) == _places(plain)


def test_bom_json_list_file_is_still_read_as_a_list(tmp_path: Path) -> None:
    path = _with_bom(tmp_path / "bom.json", json.dumps(RECORDS, indent=1))
    assert _places(path) == [("row 1", RECORDS[0]), ("row 2", RECORDS[1]), ("row 3", RECORDS[2])]


def test_bom_json_document_and_text_lines(tmp_path: Path) -> None:
    assert read_json_document(_with_bom(tmp_path / "task.json", json.dumps({"Definition": ["d"]}))) == {
        "Definition": ["d"]
    }
    assert read_text_lines(_with_bom(tmp_path / "tasks.txt", "task1_a\ntask2_b\n")) == ["task1_a", "task2_b"]


def test_invalid_utf8_after_a_bom_names_the_line_and_the_byte_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.txt"
    path.write_bytes(BOM + b"task1_a\ntask\xff\n")
    with pytest.raises(DataError, match=r"tasks.txt: line 2: not valid UTF-8 \(byte 15: "):
        read_text_lines(path)


def test_bom_file_with_a_bad_line_is_reread_with_exact_places(tmp_path: Path) -> None:
    """`datasets` cannot parse the truncated line, so the line reader runs and must not trip on the BOM."""
    path = _with_bom(tmp_path / "bom.jsonl", f"{json.dumps(RECORDS[0])}\n{json.dumps(RECORDS[1])[:-3]}\n")
    log = ProblemLog(lenient=True)
    assert [(where, record) for _, where, record in iter_source(str(path), log)] == [("line 1", RECORDS[0])]
    assert [(p.where, p.message.split(" (")[0]) for p in log.skipped] == [
        ("line 2", "truncated or malformed JSON line")
    ]
