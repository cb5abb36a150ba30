"""Tests for how data problems are named and reported (dynamics.data.problems).

Run: `python -m pytest -q tests/data/test_problems.py`
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynamics.data.problems import LENIENT_HINT, DataError, DataProblem, ProblemLog

PROBLEM = DataProblem("data.jsonl", "line 3", "messages", "missing")


def test_a_problem_names_file_place_and_field() -> None:
    assert str(PROBLEM) == "data.jsonl: line 3: field 'messages': missing"
    assert str(DataProblem("data.jsonl", "", "", "no such file")) == "data.jsonl: no such file"


def test_strict_row_problem_raises_ending_with_the_lenient_hint() -> None:
    with pytest.raises(DataError) as caught:
        ProblemLog().report(PROBLEM)
    assert str(caught.value) == f"{PROBLEM} {LENIENT_HINT}"
    assert caught.value.problem == PROBLEM


def test_a_file_problem_carries_no_hint() -> None:
    assert str(DataError(PROBLEM)) == str(PROBLEM)
    assert str(DataError("data.jsonl: the 'test' split is empty")) == "data.jsonl: the 'test' split is empty"


def test_lenient_records_row_problems_and_both_modes_record_what_is_left_out(tmp_path: Path) -> None:
    left_out = DataProblem("task.json", "", "Instances", "empty list: training task 'a' left out")
    for lenient in (False, True):
        log = ProblemLog(lenient=lenient)
        log.leave_out(left_out)
        assert log.left_out == [left_out] and log.skipped == []
    log.report(PROBLEM)
    assert log.skipped == [PROBLEM]
    report = log.write_report(tmp_path / "report" / "skipped_rows.jsonl")
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"file": "data.jsonl", "where": "line 3", "field": "messages", "message": "missing"},
        {"file": "task.json", "where": "", "field": "Instances", "message": "empty list: training task 'a' left out"},
    ]
