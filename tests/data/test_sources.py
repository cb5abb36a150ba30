"""Tests for the registered data sources (dynamics.data.sources) and the driver's checks before Ray starts.

Run: `python -m pytest -q tests/data/test_sources.py`
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynamics.config import DataConfig, parse_config
from dynamics.data.formats import FORMATS
from dynamics.data.schema import CANONICAL_SCHEMA, split_of, to_table
from dynamics.data.sources import DataError, load_examples


def _row(index: int, split: str = "train", **fields: Any) -> dict[str, Any]:
    row = {
        "id": f"local/{index:03d}",
        "source": "local",
        "task": f"task_{index % 2}",
        "category": "cat",
        "split": split,
        "messages": [
            {"role": "user", "content": f"question {index}"},
            {"role": "assistant", "content": f"answer {index}"},
        ],
        "references": [f"answer {index}"],
    }
    row.update(fields)
    return row


def _jsonl(tmp_path: Path, rows: list[dict[str, Any]], name: str = "examples.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _canonical(path: Path) -> DataConfig:
    return DataConfig(source="canonical", path=str(path))


def _data_error(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        load_examples(_canonical(path), seed=0)
    return str(caught.value)


def test_registry_holds_builtin_and_canonical() -> None:
    assert {"builtin", "canonical"} <= set(FORMATS.names())


def test_builtin_source_returns_both_splits() -> None:
    table = load_examples(DataConfig(source="builtin", options={"per_train_task": 3, "per_test_task": 2}), seed=0)
    assert table.schema == CANONICAL_SCHEMA
    splits = Counter(table.column("split").to_pylist())
    train_tasks = set(split_of(table, "train").column("task").to_pylist())
    test_tasks = set(split_of(table, "test").column("task").to_pylist())
    assert splits["train"] == 3 * len(train_tasks)
    assert splits["test"] == 2 * len(test_tasks)
    assert train_tasks and test_tasks and not train_tasks & test_tasks


def test_builtin_source_follows_the_seed() -> None:
    config = DataConfig(source="builtin", options={"per_train_task": 2, "per_test_task": 1})
    assert load_examples(config, seed=3).equals(load_examples(config, seed=3))
    assert not load_examples(config, seed=3).equals(load_examples(config, seed=4))


def test_canonical_jsonl_round_trips(tmp_path: Path) -> None:
    rows = [_row(0), _row(1), _row(2, split="test", task="held_out"), _row(3, split="valid", task="held_out")]
    table = load_examples(_canonical(_jsonl(tmp_path, rows)), seed=0)
    assert table.schema == CANONICAL_SCHEMA
    assert table.column("id").to_pylist() == ["local/000", "local/001", "local/002", "local/003"]
    assert table.column("split").to_pylist() == ["train", "train", "test", "valid"]
    assert table.column("messages").to_pylist()[2][1] == {"role": "assistant", "content": "answer 2"}
    assert table.column("answer").to_pylist() == [None] * 4


def test_canonical_parquet_is_read(tmp_path: Path) -> None:
    path = tmp_path / "examples.parquet"
    pq.write_table(to_table([_row(0), _row(1, split="test")], origin="fixture"), path)
    table = load_examples(_canonical(path), seed=0)
    assert table.column("id").to_pylist() == ["local/000", "local/001"]


def test_empty_test_split_names_file_and_split(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [_row(0), _row(1), _row(2, split="valid")])
    message = _data_error(path)
    assert str(path) in message
    assert "'test' split is empty" in message


def test_empty_train_split_names_file_and_split(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [_row(0, split="test")])
    message = _data_error(path)
    assert str(path) in message
    assert "'train' split is empty" in message


def test_row_missing_messages_names_file_row_and_field(tmp_path: Path) -> None:
    broken = _row(2, split="test")
    del broken["messages"]
    path = _jsonl(tmp_path, [_row(0), _row(1, split="test"), broken])
    message = _data_error(path)
    assert str(path) in message
    assert "row 3" in message  # the third row: places count from 1
    assert "'messages'" in message


def test_empty_assistant_reply_is_rejected(tmp_path: Path) -> None:
    silent = _row(1, messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}])
    path = _jsonl(tmp_path, [_row(0), silent, _row(2, split="test")])
    message = _data_error(path)
    assert str(path) in message
    assert "row 2" in message
    assert "no non-empty assistant reply" in message


def test_unknown_role_is_rejected(tmp_path: Path) -> None:
    odd = _row(1, messages=[{"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}])
    path = _jsonl(tmp_path, [_row(0), odd, _row(2, split="test")])
    message = _data_error(path)
    assert "row 2" in message and "messages[0].role" in message


def test_duplicate_ids_name_both_rows(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [_row(0), _row(1, split="test"), _row(2), _row(1)])
    message = _data_error(path)
    assert str(path) in message
    assert "row 4" in message
    assert "(first at " in message and "row 2)" in message
    assert "'local/001'" in message


def test_row_without_references_is_accepted_next_to_rows_with_them(tmp_path: Path) -> None:
    # `references` may be empty (SPEC §1.1); a JSONL row that leaves it out reaches validation as null.
    bare = _row(2, split="test", task="held_out")
    del bare["references"]
    rows = [_row(0), _row(1, split="test", task="held_out"), bare]
    table = load_examples(_canonical(_jsonl(tmp_path, rows)), seed=0)
    assert table.column("references").to_pylist() == [["answer 0"], ["answer 1"], []]


def test_nonexistent_path_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.jsonl"
    message = _data_error(path)
    assert str(path) in message
    assert "no such file or folder" in message


def test_directory_path_is_a_data_error(tmp_path: Path) -> None:
    message = _data_error(tmp_path)
    assert str(tmp_path) in message


def test_prepare_fails_on_empty_test_split_before_ray(tmp_path: Path) -> None:
    from dynamics.sweep.study import prepare

    path = _jsonl(tmp_path, [_row(index) for index in range(8)])
    config = parse_config(
        {
            "workdir": str(tmp_path / "work"),
            "data": {"source": "canonical", "path": str(path)},
            "models": {
                "m": {
                    "builtin": {
                        "hidden_size": 16,
                        "intermediate_size": 32,
                        "num_hidden_layers": 1,
                        "num_attention_heads": 2,
                    }
                }
            },
            "train": {"global_batch_size": 4, "micro_batch_size": 2},
            "scaling": {"num_workers": 1},
            "grid": {"volume": [4], "model": ["m"], "permutation": ["nft"], "seed": [0]},
        }
    )
    with pytest.raises(DataError) as caught:
        prepare(config)
    assert str(path) in str(caught.value)
    assert "'test' split is empty" in str(caught.value)
    assert not (tmp_path / "work").exists()


def test_cli_reports_an_empty_test_split_before_any_ray_work(tmp_path: Path, capsys, no_ray) -> None:
    import yaml

    from dynamics.cli import main

    path = _jsonl(tmp_path, [_row(i) for i in range(6)])
    config_path = tmp_path / "study.yaml"
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments/configs/offline.yaml").read_text())
    raw["data"] = {"source": "canonical", "path": str(path)}
    raw["workdir"] = str(tmp_path / "work")
    config_path.write_text(yaml.safe_dump(raw))
    assert main(["sweep", "--config", str(config_path)]) == 2
    error = capsys.readouterr().err
    assert "data error: " in error and str(path) in error and "'test' split is empty" in error


def test_task_in_both_train_and_test_is_named(tmp_path: Path) -> None:
    message = _data_error(_jsonl(tmp_path, [_row(0), _row(2, split="test")]))
    assert "field 'task'" in message and "both the train and test splits: task_0" in message


def test_truncated_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    good = [json.dumps(_row(0)), json.dumps(_row(1, split="test", task="held_out"))]
    path.write_text(good[0] + "\n" + good[1][:-20] + "\n", encoding="utf-8")
    message = _data_error(path)
    assert str(path) in message and "line 2" in message and "truncated or malformed JSON line" in message


def test_non_utf8_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    path.write_bytes(json.dumps(_row(0)).encode() + b"\n" + b'{"id": "caf\xe9"}\n')
    message = _data_error(path)
    assert str(path) in message and "line 2" in message and "not valid UTF-8" in message


def test_lenient_mode_skips_bad_rows_and_reports_each(tmp_path: Path) -> None:
    rows = [_row(0), _row(1, split="test", task="held_out"), _row(2, messages=[]), _row(1, task="dup")]
    path = _jsonl(tmp_path, rows)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[0][:-5]]) + "\n", encoding="utf-8")  # and a truncated line
    config = DataConfig(source="canonical", path=str(path), lenient=True)
    table = load_examples(config, seed=0, report_dir=tmp_path / "report")
    assert table.column("id").to_pylist() == ["local/000", "local/001"]
    report = [json.loads(line) for line in (tmp_path / "report" / "skipped_rows.jsonl").read_text().splitlines()]
    assert [(r["where"], r["field"]) for r in report] == [("line 3", "messages"), ("line 5", ""), ("line 4", "id")]
    assert all(r["file"] == str(path) for r in report)


def test_unknown_source_name_is_an_error_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"unknown data source 'canonicl'; did you mean 'canonical'"):
        load_examples(DataConfig(source="canonicl", path="x"), seed=0)


def test_a_file_source_without_a_path_is_an_error() -> None:
    with pytest.raises(ValueError, match="source 'canonical' needs 'path'"):
        load_examples(DataConfig(source="canonical"), seed=0)


def test_builtin_options_are_checked_like_any_sources() -> None:
    with pytest.raises(ValueError, match="options.per_train_tasks: .*did you mean 'per_train_task'"):
        load_examples(DataConfig(options={"per_train_tasks": 3}), seed=0)
    with pytest.raises(ValueError, match="options.per_test_task: Input should be a valid integer"):
        load_examples(DataConfig(options={"per_test_task": True}), seed=0)


def test_lenient_mode_skips_a_non_utf8_line_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    good = [json.dumps(_row(0)).encode(), json.dumps(_row(1, split="test", task="held_out")).encode()]
    path.write_bytes(good[0] + b"\n" + b'{"id": "caf\xe9"}\n' + good[1] + b"\n")
    config = DataConfig(source="canonical", path=str(path), lenient=True)
    table = load_examples(config, seed=0, report_dir=tmp_path)
    assert table.column("id").to_pylist() == ["local/000", "local/001"]
    report = [json.loads(line) for line in (tmp_path / "skipped_rows.jsonl").read_text().splitlines()]
    assert [(r["where"], r["message"].split(" (")[0]) for r in report] == [("line 2", "not valid UTF-8")]


def test_cli_lenient_flag_sets_data_lenient(tmp_path: Path, capsys) -> None:
    import yaml

    from dynamics.cli import main

    path = tmp_path / "examples.jsonl"
    rows = [_row(0), _row(1, split="test", task="held_out"), _row(2, messages=[])]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments/configs/offline.yaml").read_text())
    raw["data"] = {"source": "canonical", "path": str(path)}
    raw["workdir"] = str(tmp_path / "work")
    config_path = tmp_path / "study.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    assert main(["data", "inspect", str(config_path)]) == 2
    assert "field 'messages'" in capsys.readouterr().err
    assert main(["data", "inspect", str(config_path), "--lenient"]) == 0
    assert "rows: 2" in capsys.readouterr().out
    assert (tmp_path / "work" / "skipped_rows.jsonl").is_file()


# ---- edge cases: 1-based places, the lenient hint, splits emptied by a step ---------------------------------


def test_strict_row_problem_ends_with_the_lenient_hint_and_lenient_loads_the_file(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [_row(0), _row(1, split="test", task="held_out"), _row(2, messages=[])])
    message = _data_error(path)
    assert message.startswith(f"{path}: row 3: field 'messages': ")
    assert message.endswith("(--lenient or data.lenient: true skips bad rows and reports each one)")
    config = DataConfig(source="canonical", path=str(path), lenient=True)
    assert load_examples(config, seed=0, report_dir=tmp_path).num_rows == 2


@pytest.mark.parametrize("case", ["missing file", "broken JSON list", "empty test split"])
def test_problems_lenient_mode_cannot_fix_carry_no_hint(tmp_path: Path, case: str) -> None:
    path = tmp_path / "examples.json"
    if case == "broken JSON list":
        path.write_text(json.dumps([_row(0), _row(1, split="test")])[:-5], encoding="utf-8")
    elif case == "empty test split":
        path = _jsonl(tmp_path, [_row(0), _row(1)])
    assert "--lenient" not in _data_error(path)


def test_a_bad_parquet_row_is_named_by_its_1_based_row(tmp_path: Path) -> None:
    path = tmp_path / "examples.parquet"
    rows = [_row(0), _row(1, split="test", task="held_out"), _row(2, task="")]
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert _data_error(path).startswith(f"{path}: row 3: field 'task': ")


def test_empty_test_split_says_how_to_get_one(tmp_path: Path) -> None:
    message = _data_error(_jsonl(tmp_path, [_row(0), _row(1)]))
    assert "the 'test' split is empty" in message and "source 'canonical' gave no test rows" in message
    assert "data.test_source" in message


def test_test_split_emptied_by_lenient_skips_names_data_lenient(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [_row(0), _row(1, split="test", task="held_out", messages=[])])
    with pytest.raises(DataError) as caught:
        load_examples(DataConfig(source="canonical", path=str(path), lenient=True), seed=0, report_dir=tmp_path)
    assert str(path) in str(caught.value) and "the 'test' split is empty" in str(caught.value)
    assert "data.lenient skipped 1 bad row(s)" in str(caught.value)


def test_train_split_emptied_by_the_recipe_names_data_recipe(tmp_path: Path) -> None:
    rows = [_row(0, category="only"), _row(1, category="only"), _row(2, split="test", task="held_out")]
    config = DataConfig(
        source="canonical", path=str(_jsonl(tmp_path, rows)), recipe={"curated_total": 10, "caps": {"only": 0}}
    )
    with pytest.raises(DataError) as caught:
        load_examples(config, seed=0)
    message = str(caught.value)
    assert message == f"{config.path}: the 'train' split is empty after data.recipe: it kept none of 2 row(s)"


def test_valid_inputs_load_the_same_rows_as_before_the_edge_case_checks(tmp_path: Path) -> None:
    """The checks only raise: a clean file's table is unchanged (sampling leaves both splits non-empty)."""
    rows = [_row(i) for i in range(4)] + [_row(10 + i, split="test", task="held_out") for i in range(3)]
    path = _jsonl(tmp_path, rows)
    sampled = DataConfig(
        source="canonical", path=str(path), sample={"mode": "first", "per_train_task": 1, "per_test_task": 1}
    )
    table = load_examples(sampled, seed=0)
    assert table.column("id").to_pylist() == ["local/000", "local/001", "local/010"]
