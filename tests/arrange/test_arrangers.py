"""The registry of arrangements that configs name in `grid.permutation`."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics.arrange.arrangers import ARRANGERS, Arranged, ArrangeInputs, get_arranger
from dynamics.arrange.artifact import order_table
from dynamics.arrange.orderings import get_ordering
from dynamics.arrange.similarity import score
from dynamics.arrange.task_orders import cluster, coarse_nft, round_robin
from dynamics.config import ArrangeConfig

STUDY_NAMES = {
    "nft", "fft", "rt", "round_robin", "cluster", "task_random", "coarse_nft", "coarse_fft",
    "tma_min", "tma_max", "tma_min_max", "tma_max_min", "tma_random",
}  # fmt: skip


def _inputs(n: int = 24, m: int = 5, seed: int = 0, **settings) -> ArrangeInputs:
    rng = np.random.default_rng(seed)
    train = (rng.normal(size=(n, 8)) + 1).astype(np.float32)
    test = (rng.normal(size=(m, 8)) + 1).astype(np.float32)
    ids = [f"item-{k:03d}" for k in range(n)]
    tasks = [f"task-{k % 4}" for k in range(n)]
    return ArrangeInputs(ids, tasks, train, test, 7, ArrangeConfig(**settings), scores=score(train, test))


def test_every_study_arrangement_is_registered() -> None:
    assert set(ARRANGERS) >= STUDY_NAMES


@pytest.mark.parametrize("name", ["nft", "fft", "rt"])
def test_wsd_arrangers_are_the_registered_orderings(name: str) -> None:
    inputs = _inputs()
    arranged = get_arranger(name)(inputs)
    expected = get_ordering(name)(inputs.ids, inputs.scores.wsd, inputs.seed)
    assert np.array_equal(arranged.permutation, expected) and arranged.rounds is None


def test_task_level_arrangers_call_the_task_orders() -> None:
    inputs = _inputs()
    assert np.array_equal(get_arranger("round_robin")(inputs).permutation, round_robin(inputs.ids, inputs.tasks, 7))
    assert np.array_equal(get_arranger("cluster")(inputs).permutation, cluster(inputs.ids, inputs.tasks, 7))
    coarse = coarse_nft(inputs.ids, inputs.tasks, inputs.train, inputs.test, 7)
    assert np.array_equal(get_arranger("coarse_nft")(inputs).permutation, coarse)
    reverse = coarse_nft(inputs.ids, inputs.tasks, inputs.train, inputs.test, 7, reverse=True)
    assert np.array_equal(get_arranger("coarse_fft")(inputs).permutation, reverse)


def test_rounds_suffix_keeps_only_those_rounds() -> None:
    inputs = _inputs()
    full = get_arranger("tma_min")(inputs)
    assert full.rounds is not None and full.rounds.max() >= 2
    ranged = get_arranger("tma_min[1:3]")(inputs)
    keep = (full.rounds >= 1) & (full.rounds < 3)
    assert np.array_equal(ranged.permutation, full.permutation[keep])
    assert set(ranged.rounds.tolist()) == {1, 2}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nfft", "did you mean 'nft'"),
        ("tma_mni", "did you mean 'tma_min'"),
        ("nft[0:5]", "applies only to TMA"),
        ("tma_min[5:5]", "is empty"),
    ],
)
def test_bad_names_are_errors_that_say_why(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        get_arranger(name)


def test_order_table_stores_round_ids_and_a_subset() -> None:
    inputs = _inputs()
    arranged = Arranged(np.array([3, 1], dtype=np.int64), np.array([0, 1], dtype=np.int32))
    table = order_table(
        inputs.ids, inputs.tasks, inputs.scores.ad, inputs.scores.md, inputs.scores.wsd,
        arranged.permutation, arranged.rounds,
    )  # fmt: skip
    assert table.column("id").to_pylist() == ["item-003", "item-001"]
    assert table.column("round").to_pylist() == [0, 1]
    assert table.column("position").to_pylist() == [0, 1]
