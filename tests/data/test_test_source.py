"""Training on one source and testing on another, and which sources require disjoint train/test tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamics.config import DataConfig, EvalSourceConfig
from dynamics.data.formats import FORMATS
from dynamics.data.schema import split_of
from dynamics.data.sources import DataError, load_data, load_examples

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_samples = pytest.mark.skipif(
    not (SHARED / "alpaca-sample").is_dir() or not (SHARED / "niv2-sample").is_dir(),
    reason=f"the shared data samples are not at {SHARED}",
)


@needs_samples
def test_alpaca_training_with_niv2_held_out_test_tasks() -> None:
    config = DataConfig(
        source="alpaca",
        path=str(SHARED / "alpaca-sample"),
        test_source=EvalSourceConfig(source="niv2", path=str(SHARED / "niv2-sample")),
    )
    table = load_examples(config, seed=0)
    train, test = split_of(table, "train"), split_of(table, "test")
    assert train.num_rows == 1500 and set(train.column("source").to_pylist()) == {"alpaca"}
    assert test.num_rows == 60 and set(test.column("source").to_pylist()) == {"niv2"}
    niv2_test_tasks = (SHARED / "niv2-sample" / "test_tasks.txt").read_text().split()
    assert set(test.column("task").to_pylist()) == set(niv2_test_tasks)


@needs_samples
def test_all_rows_of_a_test_source_can_be_test_rows() -> None:
    config = DataConfig(
        source="alpaca",
        path=str(SHARED / "alpaca-sample"),
        test_source=EvalSourceConfig(source="niv2", path=str(SHARED / "niv2-sample"), split="all"),
    )
    assert split_of(load_examples(config, seed=0), "test").num_rows == 220


def test_zero_shot_formats_require_disjoint_tasks_and_study_a_formats_do_not() -> None:
    assert FORMATS.get("niv2").disjoint_tasks and FORMATS.get("flan_mini").disjoint_tasks
    assert FORMATS.get("p3").disjoint_tasks and FORMATS.get("canonical").disjoint_tasks
    assert not FORMATS.get("doit").disjoint_tasks and not FORMATS.get("norobots").disjoint_tasks


def test_disjoint_tasks_can_be_switched_off_for_a_canonical_file(tmp_path: Path) -> None:
    import json

    rows = [
        {
            "id": f"r{i}",
            "source": "s",
            "task": "same",
            "category": "c",
            "split": split,
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        }
        for i, split in enumerate(["train", "train", "test"])
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="both the train and test splits: same"):
        load_examples(DataConfig(source="canonical", path=str(path)), seed=0)
    table = load_examples(DataConfig(source="canonical", path=str(path), disjoint_tasks=False), seed=0)
    assert table.num_rows == 3


# ---- a pool and a held-out test set from one source without task labels ------------------------------------


def _chats(prefix: str, count: int) -> list[dict]:
    return [
        {
            "id": f"{prefix}{index}",
            "conversations": [{"from": "human", "value": f"{prefix} question {index}"}, {"from": "gpt", "value": "ok"}],
        }
        for index in range(count)
    ]


def _pool_and_held_out(tmp_path: Path) -> tuple[Path, Path]:
    import json

    pool, held_out = tmp_path / "pool.json", tmp_path / "held_out.json"
    pool.write_text(json.dumps(_chats("p", 4)), encoding="utf-8")
    held_out.write_text(json.dumps(_chats("h", 2)), encoding="utf-8")
    return pool, held_out


@pytest.mark.parametrize("held_out_config", [{"split": "all"}, {"options": {"split": "test"}}])
def test_sharegpt_pool_with_a_held_out_sharegpt_file(tmp_path: Path, held_out_config: dict) -> None:
    pool, held_out = _pool_and_held_out(tmp_path)
    config = DataConfig(
        source="sharegpt",
        path=str(pool),
        test_source=EvalSourceConfig(source="sharegpt", path=str(held_out), **held_out_config),
    )
    loaded = load_data(config, seed=0, cache_dir=tmp_path / "cache")
    table = loaded.table
    assert split_of(table, "train").column("id").to_pylist() == ["p0", "p1", "p2", "p3"]
    assert split_of(table, "test").column("id").to_pylist() == ["h0", "h1"]
    assert set(table.column("task").to_pylist()) == {"sharegpt"}  # no task labels: no task-leak check applies
    assert load_data(config, seed=0, cache_dir=tmp_path / "cache").cache_hit


def test_held_out_file_without_test_rows_names_the_keys_that_make_it_the_test_set(tmp_path: Path) -> None:
    pool, held_out = _pool_and_held_out(tmp_path)
    config = DataConfig(
        source="sharegpt", path=str(pool), test_source=EvalSourceConfig(source="sharegpt", path=str(held_out))
    )
    with pytest.raises(DataError) as caught:
        load_examples(config, seed=0)
    message = str(caught.value)
    assert message.startswith(f"{held_out}: the 'test' split is empty: data.test_source.split is 'test'")
    assert "2 row(s) are in split(s) train" in message
    assert "set data.test_source.split: all (every row a test row) or data.test_source.options.split: test" in message


def test_held_out_niv2_folder_without_test_tasks_names_only_the_split_key(tmp_path: Path) -> None:
    import json

    folder = tmp_path / "niv2"
    folder.mkdir()
    task = {"Definition": ["Copy."], "Instances": [{"id": "t1-0", "input": "x", "output": ["x"]}]}
    (folder / "task1_copy.json").write_text(json.dumps(task), encoding="utf-8")
    (folder / "train_tasks.txt").write_text("task1_copy\n", encoding="utf-8")
    pool, _ = _pool_and_held_out(tmp_path)
    config = DataConfig(
        source="sharegpt", path=str(pool), test_source=EvalSourceConfig(source="niv2", path=str(folder))
    )
    with pytest.raises(DataError) as caught:
        load_examples(config, seed=0)
    assert "set data.test_source.split: all (every row a test row)" in str(caught.value)
    assert "options.split" not in str(caught.value)  # NIV2 takes its split from the task lists


def test_a_task_leak_between_two_labelled_sources_names_the_key_that_allows_it(tmp_path: Path) -> None:
    import json

    def canonical(name: str, split: str) -> Path:
        messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
        row = {"id": name, "source": "s", "task": "same", "category": "c", "split": split, "messages": messages}
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(row) + "\n", encoding="utf-8")
        return path

    config = DataConfig(
        source="canonical",
        path=str(canonical("train", "train")),
        test_source=EvalSourceConfig(source="canonical", path=str(canonical("test", "test"))),
    )
    with pytest.raises(DataError, match=r"both the train and test splits: same \(set data.disjoint_tasks: false"):
        load_examples(config, seed=0)
    assert load_examples(config.model_copy(update={"disjoint_tasks": False}), seed=0).num_rows == 2


needs_sharegpt = pytest.mark.skipif(
    not (SHARED / "sharegpt-sample" / "sharegpt_sample.json").is_file(),
    reason=f"the shared ShareGPT sample is not at {SHARED}",
)


@needs_sharegpt
def test_real_sharegpt_sample_split_into_a_pool_and_a_held_out_file(tmp_path: Path) -> None:
    import json

    records = json.loads((SHARED / "sharegpt-sample" / "sharegpt_sample.json").read_text(encoding="utf-8"))
    cut = len(records) * 4 // 5
    pool, held_out = tmp_path / "pool.json", tmp_path / "held_out.json"
    pool.write_text(json.dumps(records[:cut]), encoding="utf-8")
    held_out.write_text(json.dumps(records[cut:]), encoding="utf-8")
    config = DataConfig(
        source="sharegpt",
        path=str(pool),
        lenient=True,  # the sample has a few unusable conversations (e.g. a "bing" turn)
        test_source=EvalSourceConfig(source="sharegpt", path=str(held_out), split="all"),
    )
    table = load_data(config, seed=0, report_dir=tmp_path / "reports").table
    train, test = split_of(table, "train"), split_of(table, "test")
    pool_ids = {record["id"] for record in records[:cut]}
    held_out_ids = {record["id"] for record in records[cut:]}
    assert set(train.column("id").to_pylist()) <= pool_ids and train.num_rows > 0.9 * cut
    assert set(test.column("id").to_pylist()) <= held_out_ids and test.num_rows > 0.9 * (len(records) - cut)
    assert set(table.column("source").to_pylist()) == {"sharegpt"}


def test_held_out_file_emptied_by_lenient_skips_names_data_lenient(tmp_path: Path) -> None:
    import json

    pool, held_out = _pool_and_held_out(tmp_path)
    held_out.write_text(
        json.dumps([{"id": "h0", "conversations": [{"from": "bard", "value": "hi"}]}]), encoding="utf-8"
    )
    config = DataConfig(
        source="sharegpt",
        path=str(pool),
        lenient=True,
        test_source=EvalSourceConfig(source="sharegpt", path=str(held_out), split="all"),
    )
    with pytest.raises(DataError) as caught:
        load_examples(config, seed=0, report_dir=tmp_path)
    assert str(caught.value) == (
        f"{held_out}: data.test_source loaded no rows (data.lenient skipped 1 bad row(s) of it; see the report)"
    )
    assert (tmp_path / "test_source_skipped_rows.jsonl").is_file()
