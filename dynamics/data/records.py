"""Raw records from local JSON / JSON Lines / Parquet files, with errors that name the file and line.

Loaders read through `datasets` for speed and hub support; when a local file fails to parse, this module
re-reads it line by line to say exactly where (a truncated line, invalid UTF-8, a non-object record).
Places are 1-based (`dynamics.data.problems`): "line N" in JSON Lines, "row N" for the Nth record of a JSON
list, Parquet file or hub split. A UTF-8 byte order mark at the start of a text file is ignored, as editors
on Windows write one and `datasets` already skips it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from dynamics.data.problems import DataError, DataProblem, ProblemLog

JSON_SUFFIXES = (".json", ".jsonl")
BOM = b"\xef\xbb\xbf"  # the UTF-8 byte order mark: dropped as "utf-8-sig" would, by hand to keep byte offsets


def list_files(root: Path, suffixes: tuple[str, ...] = (*JSON_SUFFIXES, ".parquet")) -> list[Path]:
    """Data files under `root` (or `root` itself), sorted by path so listing order never matters."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(DataProblem(str(root), "", "", "no such file or folder"))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes)
    if not files:
        raise DataError(DataProblem(str(root), "", "", f"no {'/'.join(suffixes)} files found"))
    return files


def _text(path: Path) -> str:
    data = path.read_bytes()
    body = data.removeprefix(BOM)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        line = body[: error.start].count(b"\n") + 1
        offset = error.start + len(data) - len(body)  # a byte of the file, BOM included
        raise DataError(
            DataProblem(str(path), f"line {line}", "", f"not valid UTF-8 (byte {offset}: {error.reason})")
        ) from None


def read_text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file such as a task list (a leading BOM ignored); errors name file and line."""
    return _text(path).splitlines()


def read_json_records(path: Path, log: ProblemLog) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for every record of a JSON list file or a JSON Lines file.

    A whole-file problem (bad encoding, a broken JSON list) always raises; a bad line of a JSON Lines file
    is a row problem (raised when strict, skipped and reported when lenient).
    """
    data = path.read_bytes().removeprefix(BOM)
    if data.lstrip()[:1] != b"[":
        yield from _json_lines(path, data, log)
        return
    try:
        records = json.loads(_text(path))
    except json.JSONDecodeError as error:
        raise DataError(DataProblem(str(path), f"line {error.lineno}", "", f"malformed JSON ({error.msg})")) from None
    for number, record in enumerate(records, start=1):
        yield from _checked_object(path, f"row {number}", record, log)


def _json_lines(path: Path, data: bytes, log: ProblemLog) -> Iterator[tuple[str, dict[str, Any]]]:
    """Records of a JSON Lines file (`data` without its BOM); a line that is not UTF-8 or not JSON is a row
    problem of its own."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            message = f"not valid UTF-8 (at byte {error.start} of the line)"
            log.report(DataProblem(str(path), f"line {number}", "", message))
            continue
        except json.JSONDecodeError as error:
            log.report(DataProblem(str(path), f"line {number}", "", f"truncated or malformed JSON line ({error.msg})"))
            continue
        yield from _checked_object(path, f"line {number}", record, log)


def _checked_object(path: Path, where: str, record: Any, log: ProblemLog) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(record, dict):
        yield where, record
    else:
        log.report(DataProblem(str(path), where, "", f"expected a JSON object, got {type(record).__name__}"))


def read_json_document(path: Path) -> Any:
    """A whole JSON document (e.g. one NIV2 task file); errors name the file and line."""
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as error:
        raise DataError(DataProblem(str(path), f"line {error.lineno}", "", f"malformed JSON ({error.msg})")) from None


def read_parquet_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """("row N", record) for every row of a Parquet file; a damaged file is a DataError naming it."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise DataError(DataProblem(str(path), "", "", f"unreadable Parquet ({error})")) from None
    for number, record in enumerate(table.to_pylist(), start=1):
        yield f"row {number}", record


def read_records(path: Path, log: ProblemLog) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for each record of one local file, by suffix."""
    if path.suffix == ".parquet":
        return read_parquet_records(path)
    return read_json_records(path, log)


def _dataset_of(file: Path):
    """One local file read by `datasets` (C++ JSON/Parquet parser); None if it cannot parse the file."""
    import datasets

    builder = "parquet" if file.suffix == ".parquet" else "json"
    try:
        dataset = datasets.load_dataset(builder, data_files=str(file), split="train")
        dataset.data.table.validate(full=True)  # Arrow's JSON reader lets invalid UTF-8 through
        return dataset
    except Exception:  # any parse, cast or encoding failure: the line-by-line reader says where and why
        return None


def arrow_via_datasets(file: Path) -> pa.Table | None:
    """The raw Arrow table of one local file (fields `datasets` had to JSON-encode stay strings)."""
    dataset = _dataset_of(file)
    return None if dataset is None else dataset.data.table


def _via_datasets(file: Path) -> list[dict[str, Any]] | None:
    """Decoded records of one local file (mixed-type fields decoded back by `datasets`)."""
    dataset = _dataset_of(file)
    return None if dataset is None else dataset.to_list()


def iter_source(
    location: str, log: ProblemLog, hub_config: str | None = None, hub_split: str | None = None
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(file, where, record) for every record of a local file/folder or a Hugging Face hub dataset.

    Local files go through `datasets` first; a file it cannot parse is re-read line by line so the error (or,
    when lenient, the skipped lines) names the exact place. Hub names need network and go straight to
    `datasets.load_dataset`.
    """
    path = Path(location)
    if path.exists():
        for file in list_files(path):
            records = _via_datasets(file)
            if records is None:
                yield from ((str(file), where, record) for where, record in read_records(file, log))
            else:
                yield from ((str(file), f"row {number}", record) for number, record in enumerate(records, start=1))
        return
    if path.is_absolute() or location.startswith(".") or path.suffix in (*JSON_SUFFIXES, ".parquet"):
        raise DataError(DataProblem(location, "", "", "no such file or folder (and not a hub dataset name)"))
    import datasets

    try:
        loaded = datasets.load_dataset(location, hub_config, split=hub_split)
    except Exception as error:
        message = f"not a local path and not loadable from the hub ({error})"
        raise DataError(DataProblem(location, "", "", message)) from None
    splits = {hub_split or "train": loaded} if isinstance(loaded, datasets.Dataset) else dict(loaded)
    for split_name, dataset in splits.items():
        for number, record in enumerate(dataset, start=1):
            yield f"{location}[{split_name}]", f"row {number}", record
