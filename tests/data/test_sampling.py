"""Study B's per-task sampling (dynamics.data.sampling, SPEC §1.3): n per train task, m per test task.

Run: `python -m pytest -q tests/data/test_sampling.py`
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from doit_pools import row, shuffled_rows
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.config import SampleConfig
from dynamics.data.sampling import sample_per_task
from dynamics.data.schema import split_of, to_table

PROPERTY = settings(max_examples=25, deadline=None)


# --- Study B: instances per task --------------------------------------------------------------------------

TASK_SIZES = {"t_small": 3, "t_mid": 12, "t_big": 40, "t_other": 25}


@pytest.fixture(scope="module")
def tasks() -> pa.Table:
    rows = [row(f"niv2/{t}/{i:04d}", t, "train") for t, n in TASK_SIZES.items() for i in range(n)]
    rows += [row(f"niv2/e{t}/{i:04d}", f"e{t}", "test") for t in range(3) for i in range(9)]
    rows += [row(f"niv2/v/{i:04d}", "t_mid", "valid") for i in range(6)]
    return shuffled_rows(to_table(rows, origin="fixture"), 11)  # file order need not be id order


def _per_task(table: pa.Table, split: str) -> Counter[str]:
    return Counter(split_of(table, split).column("task").to_pylist())


@pytest.mark.parametrize("mode", ["random", "first"])
def test_n_per_train_task_and_m_per_test_task(tasks: pa.Table, mode: str) -> None:
    sampled = sample_per_task(tasks, SampleConfig(mode=mode, per_train_task=20, per_test_task=5), seed=0)
    assert _per_task(sampled, "train") == Counter({t: min(n, 20) for t, n in TASK_SIZES.items()})
    assert _per_task(sampled, "test") == Counter(e0=5, e1=5, e2=5)
    assert split_of(sampled, "valid").equals(split_of(tasks, "valid"))


def test_first_mode_keeps_the_first_rows_in_file_order(tasks: pa.Table) -> None:
    sampled = sample_per_task(tasks, SampleConfig(mode="first", per_train_task=4, per_test_task=2), seed=0)
    seen: Counter[tuple[str, str]] = Counter()
    expected = []
    for row_id, task, split in zip(*(tasks.column(c).to_pylist() for c in ("id", "task", "split")), strict=True):
        seen[split, task] += 1
        if split == "valid" or seen[split, task] <= {"train": 4, "test": 2}[split]:
            expected.append(row_id)
    assert sampled.column("id").to_pylist() == expected


def test_unset_limits_keep_everything(tasks: pa.Table) -> None:
    assert sample_per_task(tasks, SampleConfig(), seed=0).equals(tasks)


@PROPERTY
@given(n=st.lists(st.integers(1, 45), min_size=2, max_size=2, unique=True), seed=st.integers(0, 2**32))
def test_random_draws_per_task_are_nested(tasks: pa.Table, n: list[int], seed: int) -> None:
    small, large = (
        set(sample_per_task(tasks, SampleConfig(per_train_task=k, per_test_task=k), seed).column("id").to_pylist())
        for k in sorted(n)
    )
    assert small <= large


@PROPERTY
@given(shuffle=st.integers(0, 2**32), seed=st.integers(0, 2**32))
def test_random_draws_per_task_ignore_row_order(tasks: pa.Table, shuffle: int, seed: int) -> None:
    config = SampleConfig(per_train_task=5, per_test_task=2)
    reordered = sample_per_task(shuffled_rows(tasks, shuffle), config, seed)
    assert set(reordered.column("id").to_pylist()) == set(sample_per_task(tasks, config, seed).column("id").to_pylist())


def test_sample_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        SampleConfig(per_train_task=0)
    with pytest.raises(ValueError, match="'random' or 'first'"):
        SampleConfig(mode="shuffled")
