"""Tests for the NIV2 format (dynamics.data.formats.niv2): the real sample, the prompt budget, bad files.

Run: `python -m pytest -q tests/data/formats/test_niv2.py`
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from format_helpers import SHARED_DATA

from dynamics.config import DataConfig
from dynamics.data.formats.niv2 import build_prompt, count_words, fit_prompts
from dynamics.data.schema import CANONICAL_SCHEMA
from dynamics.data.sources import SKIPPED_REPORT, DataError, load_examples

SAMPLE = SHARED_DATA / "niv2-sample"
needs_sample = pytest.mark.skipif(
    not SAMPLE.is_dir(), reason=f"NIV2 sample folder not found at {SAMPLE} (shared test data not checked out)"
)


def _niv2(path: Path, lenient: bool = False, **options: Any) -> DataConfig:
    return DataConfig(source="niv2", path=str(path), options=options, lenient=lenient)


def _rows(path: Path, **options: Any) -> list[dict[str, Any]]:
    return load_examples(_niv2(path, **options), seed=0).to_pylist()


def _data_error(config: DataConfig, report_dir: Path | None = None) -> str:
    with pytest.raises(DataError) as caught:
        load_examples(config, seed=0, report_dir=report_dir)
    return str(caught.value)


# ---- synthetic fixtures (our own text) --------------------------------------------------------------------


def _task(prefix: str, instances: int = 3, **fields: Any) -> dict[str, Any]:
    task = {
        "Categories": ["Toy Category", "Second Category"],
        "Definition": ["Repeat the colour word you are given."],
        "Positive Examples": [
            {"input": "amber", "output": "amber", "explanation": "repeated"},
            {"input": "teal", "output": "teal", "explanation": "repeated"},
            {"input": "ochre", "output": "ochre", "explanation": "repeated"},
        ],
        "Negative Examples": [],
        "Instances": [
            {"id": f"{prefix}-{index:04d}", "input": f"colour {index}", "output": [f"colour {index}", "alt"]}
            for index in range(instances)
        ],
        "URL": [float("nan")],  # the upstream NaN quirk, written as the bare token NaN
    }
    task.update(fields)
    return task


def _folder(
    root: Path,
    train: dict[str, Any],
    test: dict[str, Any],
    upstream: bool = False,
    extra_lines: dict[str, list[str]] | None = None,
) -> Path:
    """An NIV2 folder: flat (task files and split files in `root`) or upstream (tasks/, splits/default/).

    A task value that is a str is written verbatim (for unparseable files).
    """
    tasks_dir = root / "tasks" if upstream else root
    split_dir = root / "splits" / "default" if upstream else root
    tasks_dir.mkdir(parents=True, exist_ok=True)
    split_dir.mkdir(parents=True, exist_ok=True)
    for name, task in {**train, **test}.items():
        text = task if isinstance(task, str) else json.dumps(task, indent=4)
        (tasks_dir / f"{name}.json").write_text(text, encoding="utf-8")
    for split, tasks in (("train", train), ("test", test)):
        lines = list(tasks) + (extra_lines or {}).get(split, [])
        (split_dir / f"{split}_tasks.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return root


def _small(root: Path, train_task: dict[str, Any] | str | None = None, upstream: bool = False) -> Path:
    return _folder(
        root,
        train={"task1_toy_copy": _task("task1") if train_task is None else train_task},
        test={"task2_toy_held_out": _task("task2")},
        upstream=upstream,
    )


# ---- the prompt ---------------------------------------------------------------------------------------------


def test_build_prompt_exact_string() -> None:
    prompt = build_prompt(" Say it back. \n", [("red", "red\n"), ("  blue", "blue")], "\tgreen  light\n")
    assert prompt == (
        "Definition: Say it back.\n\n"
        "Positive Example 1 -\nInput: red\nOutput: red\n\n"
        "Positive Example 2 -\nInput: blue\nOutput: blue\n\n"
        "Now complete the following example -\nInput: green  light\nOutput: "
    )
    assert build_prompt("D", [], "x") == "Definition: D\n\nNow complete the following example -\nInput: x\nOutput: "


def test_fit_prompts_adds_examples_in_order_while_they_fit() -> None:
    examples = [("one two", "three"), ("four", "five"), ("six", "seven")]
    sizes = [count_words([build_prompt("Do it.", examples[:k], "in put")])[0] for k in range(4)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    for kept in range(4):
        [prompt] = fit_prompts("Do it.", examples, ["in put"], count_words, budget=sizes[kept])
        assert prompt == build_prompt("Do it.", examples[:kept], "in put")
    # Too long even bare: the input stays whole, with no examples.
    [prompt] = fit_prompts("Do it.", examples, ["in put"], count_words, budget=1)
    assert prompt == build_prompt("Do it.", [], "in put")
    assert fit_prompts("Do it.", examples, [], count_words, budget=10) == []


def test_fit_prompts_stops_at_the_first_example_that_does_not_fit() -> None:
    examples = [("a " * 50, "b"), ("c", "d")]  # the long first example blocks the short second one
    budget = count_words([build_prompt("D", examples[1:], "x")])[0]
    assert fit_prompts("D", examples, ["x"], count_words, budget) == [build_prompt("D", [], "x")]


# ---- the real sample ----------------------------------------------------------------------------------------


def _split_list(name: str) -> list[str]:
    return [line.strip() for line in (SAMPLE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@needs_sample
def test_sample_counts_per_split() -> None:
    rows = _rows(SAMPLE)
    tasks = {split: {row["task"] for row in rows if row["split"] == split} for split in ("train", "test")}
    assert Counter(row["split"] for row in rows) == {"train": 160, "test": 60}
    assert len(tasks["train"]) == 9 and len(tasks["test"]) == 12
    assert tasks["train"] == set(_split_list("train_tasks.txt"))
    assert tasks["test"] == set(_split_list("test_tasks.txt"))


@needs_sample
def test_sample_rows_match_the_task_files() -> None:
    table = load_examples(_niv2(SAMPLE), seed=0)
    assert table.schema == CANONICAL_SCHEMA
    rows = table.to_pylist()
    expected = []
    for split, listing in (("train", "train_tasks.txt"), ("test", "test_tasks.txt")):
        for task in _split_list(listing):
            document = json.loads((SAMPLE / "tasks" / f"{task}.json").read_text(encoding="utf-8"))
            expected += [(split, task, document, instance) for instance in document["Instances"]]
    assert len(rows) == len(expected)
    for row, (split, task, document, instance) in zip(rows, expected, strict=True):  # split-file, then file order
        assert re.fullmatch(r"task\d+-[0-9a-f]{32}", row["id"])
        assert row["id"] == instance["id"] and row["id"].split("-")[0] == task.split("_")[0]
        assert row["source"] == "niv2"
        assert row["task"] == task
        assert row["category"] == document["Categories"][0]
        assert row["split"] == split
        assert [turn["role"] for turn in row["messages"]] == ["user", "assistant"]
        prompt = row["messages"][0]["content"]
        assert prompt.startswith(f"Definition: {document['Definition'][0].strip()}\n\n")
        assert prompt.endswith(f"Now complete the following example -\nInput: {instance['input'].strip()}\nOutput: ")
        assert "Positive Example 1 -\nInput: " in prompt  # the default budget (1024 words) fits both examples
        assert "Positive Example 2 -\nInput: " in prompt and "Positive Example 3" not in prompt
        assert row["messages"][1]["content"] == instance["output"][0]
        assert row["references"] == instance["output"]
        assert row["answer"] == instance["output"][0]
        assert row["question_format"] == 0
        assert row["choices"] is None


@needs_sample
def test_sample_tiny_budget_drops_examples_but_keeps_the_instance() -> None:
    marker = "Now complete the following example -\n"
    full = _rows(SAMPLE)
    for options in ({"max_source_tokens": 5}, {"num_positive_examples": 0}):
        rows = _rows(SAMPLE, **options)
        assert [row["id"] for row in rows] == [row["id"] for row in full]
        for row, full_row in zip(rows, full, strict=True):
            prompt, full_prompt = row["messages"][0]["content"], full_row["messages"][0]["content"]
            assert "Positive Example" not in prompt
            definition = full_prompt.split("Positive Example 1 -")[0]
            assert prompt == definition + marker + full_prompt.split(marker)[1]  # nothing else dropped or cut
            assert row["references"] == full_row["references"]


# ---- layouts and options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", [False, True])
def test_both_layouts_load_only_listed_tasks(tmp_path: Path, upstream: bool) -> None:
    root = _small(tmp_path, upstream=upstream)
    tasks_dir = root / "tasks" if upstream else root
    (tasks_dir / "task3_not_listed.json").write_text(json.dumps(_task("task3")), encoding="utf-8")
    rows = _rows(root)
    assert [row["id"] for row in rows] == [f"task1-{i:04d}" for i in range(3)] + [f"task2-{i:04d}" for i in range(3)]
    assert {row["task"]: row["split"] for row in rows} == {"task1_toy_copy": "train", "task2_toy_held_out": "test"}
    assert {row["category"] for row in rows} == {"Toy Category"}
    assert rows[0]["references"] == ["colour 0", "alt"] and rows[0]["answer"] == "colour 0"


def test_split_dir_and_split_files_options(tmp_path: Path) -> None:
    root = _small(tmp_path / "data")
    lists = root / "my_splits"
    lists.mkdir()
    (lists / "train_tasks.txt").write_text("task2_toy_held_out\n", encoding="utf-8")
    (lists / "test_tasks.txt").write_text("task1_toy_copy\n", encoding="utf-8")
    swapped = {row["task"]: row["split"] for row in _rows(root, split_dir="my_splits")}  # relative to the folder
    assert swapped == {"task1_toy_copy": "test", "task2_toy_held_out": "train"}

    (root / "task3_toy_other.json").write_text(json.dumps(_task("task3")), encoding="utf-8")
    (lists / "other_test.txt").write_text("task3_toy_other\n", encoding="utf-8")
    override = {row["task"]: row["split"] for row in _rows(root, split_files={"test": str(lists / "other_test.txt")})}
    assert override == {"task1_toy_copy": "train", "task3_toy_other": "test"}


def test_task_in_two_split_files_names_both_lines(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        train={"task1_toy_copy": _task("task1")},
        test={"task2_toy_held_out": _task("task2")},
        extra_lines={"test": ["task1_toy_copy"]},
    )
    message = _data_error(_niv2(root))
    assert str(root / "test_tasks.txt") in message and "line 2" in message
    assert "task1_toy_copy" in message and str(root / "train_tasks.txt") in message and "line 1" in message


def test_unknown_split_name_in_options_names_the_option(tmp_path: Path) -> None:
    root = _small(tmp_path)
    with pytest.raises(ValueError) as caught:
        load_examples(_niv2(root, split_files={"dev": "dev_tasks.txt"}), seed=0)
    assert "options.split_files" in str(caught.value) and "'dev'" in str(caught.value)
    with pytest.raises(ValueError, match="options.max_source_token: .*did you mean 'max_source_tokens'"):
        load_examples(_niv2(root, max_source_token=10), seed=0)


def test_tokenizer_counts_tokens(tmp_path: Path) -> None:
    from dynamics.models import builtin_tokenizer  # byte-level: one token per UTF-8 byte

    tokenizer_dir = tmp_path / "tokenizer"
    builtin_tokenizer().save_pretrained(tokenizer_dir)
    task = _task("task1", instances=1)
    root = _small(tmp_path / "data", train_task=task)
    examples = [(e["input"], e["output"]) for e in task["Positive Examples"]]
    one_example = build_prompt(task["Definition"][0], examples[:1], "colour 0")
    rows = _rows(root, tokenizer=str(tokenizer_dir), max_source_tokens=len(one_example.encode("utf-8")))
    assert rows[0]["messages"][0]["content"] == one_example


def test_hub_flat_layout_with_a_fake_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def fake_load_dataset(name: str, config: str | None) -> dict[str, list[dict[str, Any]]]:
        assert (name, config) == ("someone/niv2-flat", "default")
        row = {"task_name": "task1_toy_copy", "id": "task1-0", "definition": "Copy.", "inputs": "x", "targets": "x"}
        held_out = {**row, "task_name": "task2_toy", "id": "task2-0", "targets": ["y", "z"]}
        return {"train": [row], "test": [held_out]}

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    config = DataConfig(source="niv2", path="someone/niv2-flat", hub_config="default")
    rows = load_examples(config, seed=0).to_pylist()
    assert [(r["id"], r["task"], r["category"], r["split"]) for r in rows] == [
        ("task1-0", "task1_toy_copy", "task1_toy_copy", "train"),
        ("task2-0", "task2_toy", "task2_toy", "test"),
    ]
    assert rows[0]["messages"][0]["content"] == build_prompt("Copy.", [], "x")
    assert rows[1]["references"] == ["y", "z"] and rows[1]["answer"] == "y"


# ---- bad files ------------------------------------------------------------------------------------------------


def test_missing_definition_is_a_file_error_even_when_lenient(tmp_path: Path) -> None:
    task = _task("task1")
    del task["Definition"]
    root = _small(tmp_path, train_task=task)
    for lenient in (False, True):
        message = _data_error(_niv2(root, lenient=lenient), report_dir=tmp_path)
        assert str(root / "task1_toy_copy.json") in message and "'Definition'" in message and "missing" in message


def test_missing_instances_is_a_file_error(tmp_path: Path) -> None:
    task = _task("task1")
    del task["Instances"]
    message = _data_error(_niv2(_small(tmp_path, train_task=task), lenient=True), report_dir=tmp_path)
    assert "task1_toy_copy.json" in message and "'Instances'" in message


@pytest.mark.parametrize(
    ("bad_instance", "field", "message"),
    [
        ({"id": "task1-bad", "input": "x"}, "'output'", "missing"),
        ({"id": "task1-bad", "input": "x", "output": []}, "'output'", "empty list"),
        ({"id": "task1-bad", "input": "x", "output": ["fine", 3]}, "'output[1]'", "expected str"),
        ({"id": "task1-bad", "input": "x", "output": "not a list"}, "'output'", "expected list"),
        ({"id": "task1-bad", "output": ["y"]}, "'input'", "missing"),
        ({"input": "x", "output": ["y"]}, "'id'", "missing"),
        ({"id": 7, "input": "x", "output": ["y"]}, "'id'", "expected str"),
    ],
)
def test_bad_instance_strict_names_it_lenient_skips_it(
    tmp_path: Path, bad_instance: dict[str, Any], field: str, message: str
) -> None:
    task = _task("task1")
    task["Instances"].insert(1, bad_instance)
    root = _small(tmp_path, train_task=task)
    error = _data_error(_niv2(root))
    assert f"{root / 'task1_toy_copy.json'}: instance 2: field {field}" in error and message in error

    table = load_examples(_niv2(root, lenient=True), seed=0, report_dir=tmp_path)
    assert table.column("id").to_pylist() == [f"task1-{i:04d}" for i in range(3)] + [f"task2-{i:04d}" for i in range(3)]
    [skipped] = [json.loads(line) for line in (tmp_path / SKIPPED_REPORT).read_text(encoding="utf-8").splitlines()]
    assert skipped["file"] == str(root / "task1_toy_copy.json") and skipped["where"] == "instance 2"
    assert f"'{skipped['field']}'" == field and message in skipped["message"]


def test_split_file_naming_a_missing_task(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        train={"task1_toy_copy": _task("task1")},
        test={"task2_toy_held_out": _task("task2")},
        extra_lines={"train": ["", "task9_never_written"]},
    )
    message = _data_error(_niv2(root))
    assert f"{root / 'train_tasks.txt'}: line 3" in message and "task9_never_written" in message


def test_unparseable_task_file_names_file_and_line(tmp_path: Path) -> None:
    broken = json.dumps(_task("task1"), indent=4).replace('"input": "colour 1",', '"input": "colour 1"', 1)
    line = broken.splitlines().index(next(x for x in broken.splitlines() if '"input": "colour 1"' in x)) + 2
    root = _small(tmp_path, train_task=broken)
    message = _data_error(_niv2(root, lenient=True), report_dir=tmp_path)
    assert f"{root / 'task1_toy_copy.json'}: line {line}" in message and "malformed JSON" in message


def test_missing_folder_is_named(tmp_path: Path) -> None:
    message = _data_error(_niv2(tmp_path / "absent"))
    assert str(tmp_path / "absent") in message and "NIV2 folder" in message


def test_no_split_files_says_where_it_looked(tmp_path: Path) -> None:
    root = _small(tmp_path)
    (root / "train_tasks.txt").unlink()
    (root / "test_tasks.txt").unlink()
    message = _data_error(_niv2(root))
    assert "train_tasks.txt" in message and str(root / "splits" / "default") in message and "split_dir" in message


# ---- edge cases: a BOM, empty tasks, 1-based places -----------------------------------------------------------


def test_bom_in_split_files_and_task_files_is_ignored(tmp_path: Path) -> None:
    expected = _rows(_small(tmp_path / "plain"))
    root = _small(tmp_path / "bom")
    for path in [root / "train_tasks.txt", root / "test_tasks.txt", root / "task1_toy_copy.json"]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert _rows(root) == expected


@pytest.mark.parametrize("lenient", [False, True])
def test_test_task_without_instances_is_an_error_naming_file_key_and_task(tmp_path: Path, lenient: bool) -> None:
    root = _folder(
        tmp_path,
        train={"task1_toy_copy": _task("task1")},
        test={"task2_toy_held_out": _task("task2"), "task3_toy_empty": _task("task3", instances=0)},
    )
    message = _data_error(_niv2(root, lenient=lenient), report_dir=tmp_path)
    assert message.startswith(f"{root / 'task3_toy_empty.json'}: field 'Instances': empty list: test task ")
    assert "'task3_toy_empty'" in message and f"{root / 'test_tasks.txt'}: line 2" in message
    assert "--lenient" not in message  # skipping rows cannot bring the task back


def test_training_task_without_instances_is_left_out_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _folder(
        tmp_path / "data",
        train={"task0_toy_empty": _task("task0", instances=0), "task1_toy_copy": _task("task1")},
        test={"task2_toy_held_out": _task("task2")},
    )
    with caplog.at_level(logging.WARNING, logger="dynamics.data.sources"):
        table = load_examples(_niv2(root), seed=0, report_dir=tmp_path / "work")
    assert table.column("id").to_pylist() == [f"task1-{i:04d}" for i in range(3)] + [f"task2-{i:04d}" for i in range(3)]
    report = [json.loads(line) for line in (tmp_path / "work" / SKIPPED_REPORT).read_text().splitlines()]
    assert [(r["file"], r["where"], r["field"]) for r in report] == [
        (str(root / "task0_toy_empty.json"), "", "Instances")
    ]
    assert "training task 'task0_toy_empty'" in report[0]["message"] and "left out" in report[0]["message"]
    assert "task0_toy_empty" in caplog.text


def test_positive_example_problems_are_named_from_1(tmp_path: Path) -> None:
    task = _task("task1")
    task["Positive Examples"][1] = {"input": "teal"}
    message = _data_error(_niv2(_small(tmp_path, train_task=task)))
    assert f"{tmp_path / 'task1_toy_copy.json'}: positive example 2: field 'output': missing" in message


def test_hub_rows_are_numbered_from_1(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    good = {"task_name": "task1_toy", "id": "task1-0", "definition": "Copy.", "inputs": "x", "targets": "x"}
    monkeypatch.setattr(
        datasets, "load_dataset", lambda name, config: {"train": [good, {**good, "id": None}], "test": []}
    )
    message = _data_error(DataConfig(source="niv2", path="someone/niv2-flat"))
    assert message.startswith("someone/niv2-flat[train]: row 2: field 'id': missing")
