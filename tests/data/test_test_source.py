"""Training on one source and testing on another, and which sources require disjoint train/test tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamics.config import DataConfig, EvalSourceConfig
from dynamics.data.formats import FORMATS
from dynamics.data.schema import split_of
from dynamics.data.sources import DataError, load_examples

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
        {"id": f"r{i}", "source": "s", "task": "same", "category": "c", "split": split,
         "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
        for i, split in enumerate(["train", "train", "test"])
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="both the train and test splits: same"):
        load_examples(DataConfig(source="canonical", path=str(path)), seed=0)
    table = load_examples(DataConfig(source="canonical", path=str(path), disjoint_tasks=False), seed=0)
    assert table.num_rows == 3
