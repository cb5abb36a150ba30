"""The registry of orders that configs name in `grid.permutation` (dynamics.arrange.orders)."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics.arrange.artifact import order_table
from dynamics.arrange.orders import ORDERS, Ordered, OrderInputs, ScoredInputs, permutation
from dynamics.arrange.orders.task_level import cluster, coarse_nft, round_robin
from dynamics.arrange.orders.wsd import farthest_first, nearest_first, random_order
from dynamics.arrange.similarity import score
from dynamics.config import ArrangeConfig
from dynamics.registry import UnknownName

STUDY_NAMES = {
    "nft", "fft", "rt", "round_robin", "cluster", "task_random", "coarse_nft", "coarse_fft",
    "tma_min", "tma_max", "tma_min_max", "tma_max_min", "tma_random",
}  # fmt: skip


def _inputs(n: int = 24, m: int = 5, seed: int = 0, **settings) -> ScoredInputs:
    rng = np.random.default_rng(seed)
    train = (rng.normal(size=(n, 8)) + 1).astype(np.float32)
    test = (rng.normal(size=(m, 8)) + 1).astype(np.float32)
    ids = [f"item-{k:03d}" for k in range(n)]
    tasks = [f"task-{k % 4}" for k in range(n)]
    return ScoredInputs(ids, tasks, train, test, 7, ArrangeConfig(**settings), scores=score(train, test))


def test_every_study_order_is_registered_with_a_description() -> None:
    assert set(ORDERS.names()) >= STUDY_NAMES
    assert all(order.description for _, order in ORDERS)


@pytest.mark.parametrize(("name", "function"), [("nft", nearest_first), ("fft", farthest_first), ("rt", random_order)])
def test_wsd_orders_are_the_module_functions(name: str, function) -> None:
    inputs = _inputs()
    ordered = permutation(name).arrange(inputs)
    assert np.array_equal(ordered.positions, function(inputs.ids, inputs.scores.wsd, inputs.seed))
    assert ordered.rounds is None


def test_task_level_orders_call_the_task_level_functions() -> None:
    inputs = _inputs()
    positions = {name: permutation(name).arrange(inputs).positions for name in ("round_robin", "cluster")}
    assert np.array_equal(positions["round_robin"], round_robin(inputs.ids, inputs.tasks, 7))
    assert np.array_equal(positions["cluster"], cluster(inputs.ids, inputs.tasks, 7))
    coarse = coarse_nft(inputs.ids, inputs.tasks, inputs.train, inputs.test, 7)
    assert np.array_equal(permutation("coarse_nft").arrange(inputs).positions, coarse)
    reverse = coarse_nft(inputs.ids, inputs.tasks, inputs.train, inputs.test, 7, reverse=True)
    assert np.array_equal(permutation("coarse_fft").arrange(inputs).positions, reverse)


def test_only_tma_orders_have_rounds_and_score_the_items_themselves() -> None:
    with_rounds = {name for name, order in ORDERS if order.has_rounds}
    assert with_rounds == {name for name in STUDY_NAMES if name.startswith("tma_")}
    assert {name for name, order in ORDERS if order.arrange_and_score is not None} == with_rounds


def test_an_order_that_scores_itself_gives_the_same_order_and_scores_as_a_separate_pass() -> None:
    inputs = _inputs()
    plain = OrderInputs(inputs.ids, inputs.tasks, inputs.train, inputs.test, inputs.seed, inputs.settings)
    scores, fused = permutation("tma_min").arrange_and_score(plain)
    separate = permutation("tma_min").arrange(inputs)
    assert np.array_equal(fused.positions, separate.positions) and np.array_equal(fused.rounds, separate.rounds)
    assert np.allclose(scores.wsd, inputs.scores.wsd, atol=1e-6)
    with pytest.raises(TypeError, match="does not score the items itself"):
        permutation("nft").arrange_and_score(plain)


def test_rounds_suffix_keeps_only_those_rounds() -> None:
    inputs = _inputs()
    full = permutation("tma_min").arrange(inputs)
    assert full.rounds is not None and full.rounds.max() >= 2
    ranged = permutation("tma_min[1:3]").arrange(inputs)
    keep = (full.rounds >= 1) & (full.rounds < 3)
    assert np.array_equal(ranged.positions, full.positions[keep])
    assert set(ranged.rounds.tolist()) == {1, 2}


def test_a_names_own_range_wins_over_the_setting() -> None:
    inputs = _inputs(tma_rounds=[0, 1])
    assert set(permutation("tma_min").arrange(inputs).rounds.tolist()) == {0}
    assert set(permutation("tma_min[1:2]").arrange(inputs).rounds.tolist()) == {1}
    assert permutation("nft").arrange(inputs).rounds is None  # the setting applies only to orders with rounds


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("nfft", UnknownName, "unknown permutation 'nfft'; did you mean 'nft'"),
        ("tma_mni", UnknownName, "did you mean 'tma_min'"),
        ("tma_mni[0:5]", UnknownName, "did you mean 'tma_min'"),
        ("nft[0:5]", ValueError, "applies only to orders with rounds"),
        ("tma_min[5:5]", ValueError, "is empty"),
    ],
)
def test_bad_names_are_errors_that_say_why(name: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("[", r"\[")):
        permutation(name)


def test_order_table_stores_round_ids_and_a_subset() -> None:
    inputs = _inputs()
    ordered = Ordered(np.array([3, 1], dtype=np.int64), np.array([0, 1], dtype=np.int32))
    table = order_table(
        inputs.ids, inputs.tasks, inputs.scores.ad, inputs.scores.md, inputs.scores.wsd,
        ordered.positions, ordered.rounds,
    )  # fmt: skip
    assert table.column("id").to_pylist() == ["item-003", "item-001"]
    assert table.column("round").to_pylist() == [0, 1]
    assert table.column("position").to_pylist() == [0, 1]
