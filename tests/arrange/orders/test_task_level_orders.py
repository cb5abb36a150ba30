import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.arrange.orders import ORDERS, ScoredInputs
from dynamics.arrange.orders.task_level import cluster, coarse_nft, round_robin
from dynamics.arrange.similarity import score
from dynamics.config import ArrangeConfig

# Three tasks of unequal sizes. Sampling order is ascending id, so "a-10" comes before "a-2".
# default_rng(3).permutation(3) == [2, 1, 0]: seed 3 puts the sorted names (alpha, beta, gamma) as
# gamma, beta, alpha; seed 1 gives [0, 1, 2], the sorted order.
ROWS = [("g-2", "gamma"), ("a-2", "alpha"), ("b-1", "beta"), ("a-10", "alpha"), ("g-1", "gamma"), ("a-1", "alpha")]
IDS = [item for item, _ in ROWS]
TASKS = [task for _, task in ROWS]

# Fixed vectors with non-negative entries, so no task mean can cancel to zero.
LEVELS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.5, 2.0]], dtype=np.float32)
TEST = np.array([[1.0, 0.2, 0.0], [0.3, 1.0, 0.1], [0.0, 0.4, 1.0]], dtype=np.float32)


def in_order(ids: list[str], perm: np.ndarray) -> list[str]:
    return [ids[i] for i in perm]


def check_permutation(perm: np.ndarray, n: int) -> None:
    assert perm.dtype == np.int64
    assert perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))


@st.composite
def task_rows(draw: st.DrawFn) -> tuple[list[str], list[str], np.ndarray]:
    """Unique ids in a few tasks, each with one of a few vectors, so tied task means are common."""
    ids = draw(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=30, unique=True))
    tasks = draw(st.lists(st.sampled_from(["t0", "t1", "t2", "t3", "t4"]), min_size=len(ids), max_size=len(ids)))
    levels = draw(st.lists(st.integers(0, len(LEVELS) - 1), min_size=len(ids), max_size=len(ids)))
    return ids, tasks, LEVELS[levels]


def run_all(ids: list[str], tasks: list[str], vectors: np.ndarray, seed: int) -> dict[str, list[str]]:
    return {
        "round_robin": in_order(ids, round_robin(ids, tasks, seed)),
        "cluster": in_order(ids, cluster(ids, tasks, seed)),
        "coarse_nft": in_order(ids, coarse_nft(ids, tasks, vectors, TEST, seed)),
        "coarse_fft": in_order(ids, coarse_nft(ids, tasks, vectors, TEST, seed, reverse=True)),
    }


# --- concrete orders -----------------------------------------------------------------------------------


def test_round_robin_takes_one_item_per_task_per_pass() -> None:
    assert in_order(IDS, round_robin(IDS, TASKS, seed=3)) == ["g-1", "b-1", "a-1", "g-2", "a-10", "a-2"]
    assert in_order(IDS, round_robin(IDS, TASKS, seed=1)) == ["a-1", "b-1", "g-1", "a-10", "g-2", "a-2"]


def test_cluster_keeps_each_task_together_in_sampling_order() -> None:
    assert in_order(IDS, cluster(IDS, TASKS, seed=3)) == ["g-1", "g-2", "b-1", "a-1", "a-10", "a-2"]
    assert in_order(IDS, cluster(IDS, TASKS, seed=1)) == ["a-1", "a-10", "a-2", "b-1", "g-1", "g-2"]


def test_within_task_positions_replace_id_order() -> None:
    # Positions reverse alpha's id order and keep gamma's; they are only compared inside a task.
    positions = {"g-2": 7, "a-2": 0, "b-1": 5, "a-10": 1, "g-1": 3, "a-1": 2}
    within = np.array([positions[item] for item in IDS], dtype=np.int64)
    assert in_order(IDS, round_robin(IDS, TASKS, 3, within_task=within)) == ["g-1", "b-1", "a-2", "g-2", "a-10", "a-1"]
    assert in_order(IDS, cluster(IDS, TASKS, 3, within_task=within)) == ["g-1", "g-2", "b-1", "a-2", "a-10", "a-1"]


def test_task_random_is_rt_under_study_bs_name() -> None:
    assert ORDERS.canonical("task_random") == "rt" and ORDERS.get("task_random") is ORDERS.get("rt")
    vectors = np.random.default_rng(0).normal(size=(len(IDS), TEST.shape[1])).astype(np.float32)
    sorted_ids = sorted(IDS)
    for seed in range(5):
        inputs = ScoredInputs(IDS, TASKS, vectors, TEST, seed, ArrangeConfig(), scores=score(vectors, TEST))
        expected = [sorted_ids[i] for i in np.random.default_rng(seed).permutation(len(IDS))]
        assert in_order(IDS, ORDERS.get("task_random").arrange(inputs).positions) == expected


def test_coarse_nft_orders_tasks_by_mean_embedding_wsd() -> None:
    # One test point on the x axis, so MD = AD = -cos(task mean, x), w_avg = 1 and WSD = -2·cos.
    # zeta's mean is (1, 0): cos 1; alpha's is (1, 1): cos 0.71; mu's is (-0.5, 0.5): cos -0.71.
    rows = [
        ("m-1", "mu", [-3.0, 0.0]),
        ("z-2", "zeta", [1.0, -0.1]),
        ("a-1", "alpha", [2.0, 2.0]),
        ("m-2", "mu", [0.0, 5.0]),
        ("z-1", "zeta", [1.0, 0.1]),
        ("a-2", "alpha", [0.5, 0.5]),
    ]
    ids = [r[0] for r in rows]
    tasks = [r[1] for r in rows]
    train = np.array([r[2] for r in rows], dtype=np.float32)
    test = np.array([[4.0, 0.0]], dtype=np.float32)
    assert in_order(ids, coarse_nft(ids, tasks, train, test, seed=0)) == ["z-1", "z-2", "a-1", "a-2", "m-1", "m-2"]
    # Coarse FFT reverses the tasks; items inside each task keep sampling order.
    fft = coarse_nft(ids, tasks, train, test, seed=0, reverse=True)
    assert in_order(ids, fft) == ["m-1", "m-2", "a-1", "a-2", "z-1", "z-2"]


def test_coarse_nft_averages_normalised_vectors() -> None:
    # big's raw mean (50, 0.5) would point almost along x; its normalised mean (0.5, 0.5) is at 45°,
    # farther from the test point than other's (1, 0.3) at about 17°.
    ids = ["b-1", "b-2", "o-1"]
    tasks = ["big", "big", "other"]
    train = np.array([[100.0, 0.0], [0.0, 1.0], [1.0, 0.3]], dtype=np.float32)
    test = np.array([[1.0, 0.0]], dtype=np.float32)
    assert in_order(ids, coarse_nft(ids, tasks, train, test, seed=0)) == ["o-1", "b-1", "b-2"]


def test_coarse_nft_breaks_task_ties_by_name() -> None:
    ids = ["p", "q", "r", "s"]
    tasks = ["t-b", "t-a", "t-b", "t-c"]
    train = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [0.0, 1.0]], dtype=np.float32)
    test = np.array([[1.0, 0.0]], dtype=np.float32)
    assert in_order(ids, coarse_nft(ids, tasks, train, test, seed=0)) == ["q", "p", "r", "s"]
    assert in_order(ids, coarse_nft(ids, tasks, train, test, seed=0, reverse=True)) == ["s", "p", "r", "q"]


def dense_task_wsd(tasks: list[str], train: np.ndarray, test: np.ndarray, w_min: float, w_avg: float | None):
    """Sorted task names and their WSD from the full task × test cosine matrix, in float64."""
    names = sorted(set(tasks))
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    means = np.stack([unit[[t == name for t in tasks]].mean(axis=0) for name in names])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    t = test / np.linalg.norm(test, axis=1, keepdims=True)
    distance = -(means @ t.T)  # (T, M)
    md, ad = distance.min(axis=1), distance.mean(axis=1)
    if w_avg is None:
        w_avg = md.mean() / ad.mean()
    return names, w_min * md + w_avg * ad


@pytest.mark.parametrize(("w_min", "w_avg", "reverse"), [(1.0, None, False), (1.0, None, True), (0.3, 2.0, False)])
def test_coarse_nft_matches_dense_task_level_wsd(w_min: float, w_avg: float | None, reverse: bool) -> None:
    checked = 0
    for case in range(40):
        rng = np.random.default_rng(case)
        direction = rng.normal(size=8)
        num_tasks = int(rng.integers(2, 7))
        sizes = rng.integers(1, 6, size=num_tasks)
        tasks = [f"task-{t}" for t in range(num_tasks) for _ in range(sizes[t])]
        ids = [f"id-{i:03d}" for i in rng.permutation(len(tasks))]
        train = (rng.normal(size=(len(tasks), 8)) + 0.8 * direction).astype(np.float32)
        test = (rng.normal(size=(5, 8)) * 0.5 + direction).astype(np.float32)
        names, wsd = dense_task_wsd(tasks, train, test, w_min, w_avg)
        if np.min(np.diff(np.sort(wsd))) < 1e-4:
            continue  # a near-tie that float32 rounding may legitimately resolve either way
        task_order = [names[i] for i in np.argsort(wsd)]
        if reverse:
            task_order = task_order[::-1]
        expected = [i for name in task_order for i in sorted(i for i, t in zip(ids, tasks, strict=True) if t == name)]
        perm = coarse_nft(ids, tasks, train, test, seed=0, w_min=w_min, w_avg=w_avg, reverse=reverse)
        assert in_order(ids, perm) == expected
        checked += 1
    assert checked >= 30


# --- properties ----------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(data=task_rows(), seed=st.integers(0, 2**32 - 1))
def test_all_orders_are_permutations(data: tuple[list[str], list[str], np.ndarray], seed: int) -> None:
    ids, tasks, vectors = data
    check_permutation(round_robin(ids, tasks, seed), len(ids))
    check_permutation(cluster(ids, tasks, seed), len(ids))
    check_permutation(coarse_nft(ids, tasks, vectors, TEST, seed), len(ids))


@settings(max_examples=100, deadline=None)
@given(data=task_rows(), seed=st.integers(0, 2**32 - 1))
def test_round_robin_and_cluster_share_the_task_order(data: tuple[list[str], list[str], np.ndarray], seed: int) -> None:
    ids, tasks, _ = data
    task_of = dict(zip(ids, tasks, strict=True))
    rr = [task_of[i] for i in in_order(ids, round_robin(ids, tasks, seed))]
    cl = [task_of[i] for i in in_order(ids, cluster(ids, tasks, seed))]
    runs = [task for task, _ in itertools.groupby(cl)]
    assert len(runs) == len(set(tasks))  # each task's items are contiguous in cluster
    assert rr[: len(runs)] == runs  # round robin's first pass visits the tasks in cluster's order


@settings(max_examples=100, deadline=None)
@given(data=task_rows(), seed=st.integers(0, 2**32 - 1), shuffle_seed=st.integers(0, 2**32 - 1))
def test_orders_do_not_depend_on_input_row_order(
    data: tuple[list[str], list[str], np.ndarray], seed: int, shuffle_seed: int
) -> None:
    ids, tasks, vectors = data
    rows = np.random.default_rng(shuffle_seed).permutation(len(ids))
    shuffled = run_all([ids[i] for i in rows], [tasks[i] for i in rows], vectors[rows], seed)
    assert shuffled == run_all(ids, tasks, vectors, seed)


def test_seed_changes_task_order_for_round_robin_and_cluster() -> None:
    ids = [f"x-{i:02d}" for i in range(20)]
    tasks = [f"task-{i % 5}" for i in range(20)]
    rr = {tuple(in_order(ids, round_robin(ids, tasks, seed))) for seed in range(10)}
    cl = {tuple(in_order(ids, cluster(ids, tasks, seed))) for seed in range(10)}
    assert len(rr) > 1
    assert len(cl) > 1
    np.testing.assert_array_equal(round_robin(ids, tasks, 7), round_robin(ids, tasks, 7))
    np.testing.assert_array_equal(cluster(ids, tasks, 7), cluster(ids, tasks, 7))


def test_coarse_nft_ignores_seed() -> None:
    vectors = LEVELS[[0, 1, 2, 3, 0, 1]]
    np.testing.assert_array_equal(
        coarse_nft(IDS, TASKS, vectors, TEST, seed=0), coarse_nft(IDS, TASKS, vectors, TEST, seed=12345)
    )


# --- errors --------------------------------------------------------------------------------------------

ALL = {
    "round_robin": lambda ids, tasks: round_robin(ids, tasks, 0),
    "cluster": lambda ids, tasks: cluster(ids, tasks, 0),
    "coarse_nft": lambda ids, tasks: coarse_nft(ids, tasks, np.ones((len(ids), 3), np.float32), TEST, 0),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_input_errors_name_the_problem(name: str) -> None:
    order = ALL[name]
    with pytest.raises(ValueError, match="differ in length: 2 ids, 1 tasks"):
        order(["a", "b"], ["t"])
    with pytest.raises(ValueError, match="empty"):
        order([], [])
    with pytest.raises(ValueError, match=re.escape("'b' appears at rows 1 and 3")):
        order(["a", "b", "c", "b"], ["t", "t", "u", "u"])
    with pytest.raises(ValueError, match="ids row 1 must be a string"):
        order(["a", 7], ["t", "t"])
    with pytest.raises(ValueError, match="tasks row 0 must be a string"):
        order(["a", "b"], [None, "t"])


def test_within_task_errors() -> None:
    with pytest.raises(ValueError, match="one position per row"):
        cluster(IDS, TASKS, 0, within_task=np.arange(3))
    with pytest.raises(ValueError, match="integer sampling positions"):
        round_robin(IDS, TASKS, 0, within_task=np.linspace(0, 1, len(IDS)))
    # a-2 (row 1) and a-1 (row 5) share position 4 in task alpha; b-1 may reuse it in another task.
    within = np.array([0, 4, 4, 1, 2, 4])
    with pytest.raises(ValueError, match=re.escape("task 'alpha' has position 4 at rows 1 and 5")):
        cluster(IDS, TASKS, 0, within_task=within)


def test_coarse_nft_errors() -> None:
    with pytest.raises(ValueError, match=re.escape("one row per id (6 rows), got shape (5, 3)")):
        coarse_nft(IDS, TASKS, np.ones((5, 3)), TEST, 0)
    with pytest.raises(ValueError, match="different dimensions"):
        coarse_nft(IDS, TASKS, np.ones((6, 2)), TEST, 0)
    zero_row = np.ones((6, 3))
    zero_row[2] = 0.0
    with pytest.raises(ValueError, match="train row 2 has zero norm"):
        coarse_nft(IDS, TASKS, zero_row, TEST, 0)
    # alpha's two instances point in opposite directions, so its mean embedding is the zero vector.
    train = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-3.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="task 'alpha' has a mean embedding of zero norm"):
        coarse_nft(["p", "q", "r"], ["alpha", "beta", "alpha"], train, TEST, 0)
