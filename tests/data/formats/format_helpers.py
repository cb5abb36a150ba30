"""Shared scaffolding for the format tests in this folder: loading, writing fixtures, and the checks every
record-based format repeats (a bad record named strictly, skipped leniently, listing order).

The test modules import it as `format_helpers`: pytest's default "prepend" import mode puts this folder (the
test file's own folder, as there is no `__init__.py`) first on sys.path.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from dynamics.data.formats import FORMATS, LoadRequest, SourcedRow
from dynamics.data.problems import LENIENT_HINT, DataError, ProblemLog

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
"""The shared real samples (`<sample>/...`), next to the checkout; tests skip when one is absent."""

Row = dict[str, Any]
Loader = Callable[..., tuple[list[SourcedRow], ProblemLog]]
"""`load(location, lenient=False, **options)` for one format, as `partial(load_format, name)` gives."""
Writer = Callable[[Path, list[Any]], Path]
"""`write(path, records) -> path`, as `write_json` and `write_jsonl`."""
BadRecords = Mapping[str, tuple[Any, str, str]]
"""Case name -> (bad record, field the error names, text the message holds)."""


def load_format_rows(name: str, location: Path | str, log: ProblemLog, **options: Any) -> list[SourcedRow]:
    """The rows format `name` loads from `location` with `options`, its problems going to `log`."""
    data_format = FORMATS.get(name)
    request = LoadRequest(str(location), name, data_format.options(**options))
    return data_format.loader(request, log)  # type: ignore[return-value]  # these formats give lists


def check_options(name: str, **options: Any) -> None:
    """Validate `options` for format `name` as the planning step does (ValueError naming `options.<key>`)."""
    FORMATS.get(name).check_options(options)


def load_format(
    name: str, location: Path | str, lenient: bool = False, **options: Any
) -> tuple[list[SourcedRow], ProblemLog]:
    """The rows format `name` loads from `location`, and the problem log (strict unless `lenient`)."""
    log = ProblemLog(lenient=lenient)
    return load_format_rows(name, location, log, **options), log


def write_json(path: Path, records: list[Any], indent: int | None = 1) -> Path:
    """`records` as one JSON array in `path` (UTF-8); returns `path`."""
    path.write_text(json.dumps(records, indent=indent), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[Any]) -> Path:
    """`records` as JSON lines in `path` (UTF-8); returns `path`."""
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def check_bad_record_named(load: Loader, path: Path, field: str, message: str) -> None:
    """Loading `path` strictly fails at its second record ("row 2": places count from 1), the error naming
    file, row and `field`, holding `message` and ending with the hint that lenient mode would skip the row."""
    with pytest.raises(DataError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: row 2: field '{field}': ")
    assert message in str(caught.value)
    assert str(caught.value).endswith(LENIENT_HINT)


def load_bad_records_leniently(
    load: Loader, path: Path, first: Any, bad_records: BadRecords, last: Any, write: Writer = write_json
) -> list[SourcedRow]:
    """Writes `first`, every bad record (cases in sorted order) and `last` to `path` with `write`, loads it
    leniently, checks each bad record was skipped and recorded with its file, row (the first bad one is
    "row 2") and field, and returns the rows.
    """
    cases = sorted(bad_records)
    write(path, [first, *(bad_records[case][0] for case in cases), last])
    rows, log = load(path, lenient=True)
    assert [(p.file, p.where, p.field) for p in log.skipped] == [
        (str(path), f"row {number}", bad_records[case][1]) for number, case in enumerate(cases, start=2)
    ]
    return rows


def load_in_both_listing_orders(
    load: Loader,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    names: tuple[str, str],
    records: Callable[[str], list[Any]],
    write: Writer = write_json,
    **options: Any,
) -> list[Row]:
    """Writes files `names` (contents `records(name)`) into two folders in opposite orders, loads one as listed
    and the other with `Path.rglob` listing backwards (patched for the rest of the test), checks both give the
    same rows and returns them.
    """
    forward, backward = tmp_path / "forward", tmp_path / "backward"
    forward.mkdir()
    backward.mkdir()
    for folder, order in ((forward, names), (backward, names[::-1])):
        for name in order:  # created in opposite orders
            write(folder / name, records(name))
    expected = [row for _, _, row in load(forward, **options)[0]]
    real_rglob = pathlib.Path.rglob
    monkeypatch.setattr(pathlib.Path, "rglob", lambda self, pattern: reversed(list(real_rglob(self, pattern))))
    assert [row for _, _, row in load(backward, **options)[0]] == expected
    return expected
