"""The seeded, task-stratified subset that costly metrics score."""

from __future__ import annotations

import pytest

from dynamics.evaluate.subsets import stratified_subset, task_quotas


def test_quotas_give_every_task_one_and_share_the_rest_by_size() -> None:
    # 10 items to share among tasks of 12, 6 and 2: one each, then 7 of the 17 spare by size:
    # a 11·7/17 = 4.53, b 5·7/17 = 2.06, c 1·7/17 = 0.41 -> 4 + 2 + 0 = 6, one left for the largest remainder (a).
    assert task_quotas({"a": 12, "b": 6, "c": 2}, 10) == {"a": 6, "b": 3, "c": 1}


def test_a_subset_smaller_than_the_task_count_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold one item of each of the 3 tasks"):
        task_quotas({"a": 1, "b": 1, "c": 1}, 2)


def test_the_subset_depends_on_the_seed_and_the_ids_not_on_file_order() -> None:
    ids = [f"item-{k}" for k in range(40)]
    tasks = ["a" if k < 30 else "b" for k in range(40)]
    kept = stratified_subset(ids, tasks, 8, seed=1)
    # one each, then 6 spare by size: a 6·29/38 = 4.58, b 6·9/38 = 1.42 -> 4 + 1, the last one to a (.58 > .42)
    assert len(kept) == 8 and sum(tasks[p] == "b" for p in kept) == 2
    reversed_kept = stratified_subset(ids[::-1], tasks[::-1], 8, seed=1)
    assert sorted(ids[p] for p in kept) == sorted(ids[::-1][p] for p in reversed_kept)
    assert stratified_subset(ids, tasks, 8, seed=2) != kept
    assert stratified_subset(ids, tasks, None, seed=1) == list(range(40))
