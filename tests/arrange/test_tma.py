import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.arrange import tma as tma_module
from dynamics.arrange.similarity import l2_normalise, score
from dynamics.arrange.tma import TmaResult, scored_tma, scored_tma_variant, select_rounds, tma, tma_variant


def exact_cosines(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """(N, M) exact cosines by the module's rule: unit float32 rows on a 2**-26 grid, integer dot products."""
    x = np.rint(l2_normalise(train, "train").astype(np.float64) * 2.0**26).astype(np.int64)
    t = np.rint(l2_normalise(test, "test").astype(np.float64) * 2.0**26).astype(np.int64)
    return (x @ t.T).astype(np.float64) * 2.0**-52  # int64 arithmetic: exact, whatever the summation order


def reference_tma(
    cosines: np.ndarray,
    ids: list[str],
    direction: str,
    max_items: int | None = None,
    max_rounds: int | None = None,
    within_round: str = "distance",
    excluded: frozenset[int] = frozenset(),
) -> tuple[list[int], list[int]]:
    """TMA straight from the definition: every round rescans all remaining items for every test point."""
    scores = cosines if direction == "nearest" else -cosines
    remaining = sorted(set(range(len(ids))) - excluded)
    order: list[int] = []
    rounds: list[int] = []
    round_id = 0
    while remaining and (max_items is None or len(order) < max_items):
        if max_rounds is not None and round_id >= max_rounds:
            break
        block = scores[remaining]  # (R, M) scores of the items not yet taken
        best_claim: dict[int, float] = {}
        for j in range(scores.shape[1]):
            tied = [remaining[r] for r in np.flatnonzero(block[:, j] == block[:, j].max())]
            item = min(tied, key=lambda i: ids[i])
            best_claim[item] = max(best_claim.get(item, -np.inf), scores[item, j])
        if within_round == "distance":
            chosen = sorted(best_claim, key=lambda i: (-best_claim[i], ids[i]))
        else:
            chosen = sorted(best_claim, key=lambda i: ids[i])
        if max_items is not None:
            chosen = chosen[: max_items - len(order)]
        order += chosen
        rounds += [round_id] * len(chosen)
        remaining = [i for i in remaining if i not in best_claim]
        round_id += 1
    return order, rounds


def reference_variant(
    cosines: np.ndarray, ids: list[str], variant: str, k: int, seed: int, within_round: str
) -> tuple[list[int], list[int]]:
    if variant in ("min", "max"):
        direction = "nearest" if variant == "min" else "farthest"
        return reference_tma(cosines, ids, direction, max_items=k, within_round=within_round)
    first_direction, second_direction = ("farthest", "nearest") if variant == "max_min" else ("nearest", "farthest")
    order, rounds = reference_tma(cosines, ids, first_direction, max_items=(k + 1) // 2, within_round=within_round)
    tail, tail_rounds = reference_tma(
        cosines, ids, second_direction, max_items=k - len(order), within_round=within_round, excluded=frozenset(order)
    )
    offset = rounds[-1] + 1 if rounds else 0
    order, rounds = order + tail[::-1], rounds + [r + offset for r in tail_rounds[::-1]]
    if variant == "random":
        pool = sorted(range(len(order)), key=lambda p: ids[order[p]])
        shuffled = [pool[p] for p in np.random.default_rng(seed).permutation(len(pool))]
        order, rounds = [order[p] for p in shuffled], [rounds[p] for p in shuffled]
    return order, rounds


def tied_vectors(rng: np.random.Generator, n: int, dim: int, style: str) -> np.ndarray:
    """Vectors with many exact ties: small integers, or rows repeated from a small pool."""
    if style == "integers":
        vectors = rng.integers(-2, 3, (n, dim)).astype(np.float32)
    elif style == "duplicates":
        pool = rng.standard_normal((max(1, n // 4), dim)).astype(np.float32)
        vectors = pool[rng.integers(0, pool.shape[0], n)] * rng.choice([1.0, 3.0], (n, 1)).astype(np.float32)
    else:
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
    zero = ~vectors.any(axis=1)
    vectors[zero, 0] = 1.0  # cosine is undefined for a zero row
    return vectors


def shuffled_ids(rng: np.random.Generator, n: int) -> list[str]:
    # Id order unrelated to row order, and string order unlike numeric order ("id10" < "id9").
    return [f"id{value}" for value in rng.permutation(n)]


def assert_equal(result: TmaResult, expected: tuple[list[int], list[int]]) -> None:
    assert result.order.dtype == np.int64 and result.rounds.dtype == np.int32
    assert result.order.tolist() == expected[0]
    assert result.rounds.tolist() == expected[1]


cases = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n": st.integers(1, 300),
        "m": st.integers(1, 30),
        "dim": st.integers(1, 5),
        "style": st.sampled_from(["integers", "duplicates", "gaussian"]),
        "within_round": st.sampled_from(["distance", "index"]),
        "initial_k": st.sampled_from([1, 2, 5, 32]),
        "chunk_rows": st.sampled_from([1, 7, 64, 8192]),
        "engine": st.sampled_from(["lists", "dense", "auto"]),
    }
)


@contextmanager
def forced_engine(engine: str) -> Iterator[None]:
    """Run TMA on candidate lists or on the dense matrix regardless of size ("auto": the module's choice)."""
    if engine == "auto":
        yield
        return
    with mock.patch.object(tma_module, "_use_dense", lambda n, m, reach: engine == "dense"):
        yield


@settings(max_examples=150, deadline=None)
@given(case=cases, direction=st.sampled_from(["nearest", "farthest"]), limit=st.one_of(st.none(), st.integers(0, 320)))
def test_tma_equals_reference(case: dict, direction: str, limit: int | None) -> None:
    rng = np.random.default_rng(case["seed"])
    train = tied_vectors(rng, case["n"], case["dim"], case["style"])
    test = tied_vectors(rng, case["m"], case["dim"], case["style"])
    ids = shuffled_ids(rng, case["n"])
    with forced_engine(case["engine"]):
        result = tma(
            train,
            test,
            ids,
            direction=direction,
            max_items=limit,
            within_round=case["within_round"],
            initial_k=case["initial_k"],
            chunk_rows=case["chunk_rows"],
        )
    cosines = exact_cosines(train, test)
    assert_equal(result, reference_tma(cosines, ids, direction, limit, within_round=case["within_round"]))


@settings(max_examples=40, deadline=None)
@given(case=cases, rounds=st.integers(0, 6))
def test_max_rounds_equals_reference(case: dict, rounds: int) -> None:
    rng = np.random.default_rng(case["seed"])
    train = tied_vectors(rng, case["n"], case["dim"], case["style"])
    test = tied_vectors(rng, case["m"], case["dim"], case["style"])
    ids = shuffled_ids(rng, case["n"])
    with forced_engine(case["engine"]):
        result = tma(
            train, test, ids, max_rounds=rounds, within_round=case["within_round"], initial_k=case["initial_k"]
        )
    expected = reference_tma(exact_cosines(train, test), ids, "nearest", None, rounds, case["within_round"])
    assert_equal(result, expected)
    assert set(result.rounds.tolist()) <= set(range(rounds))


@settings(max_examples=100, deadline=None)
@given(
    case=cases,
    variant=st.sampled_from(["min", "max", "min_max", "max_min", "random"]),
    k=st.integers(0, 320),
)
def test_variants_equal_reference(case: dict, variant: str, k: int) -> None:
    rng = np.random.default_rng(case["seed"])
    train = tied_vectors(rng, case["n"], case["dim"], case["style"])
    test = tied_vectors(rng, case["m"], case["dim"], case["style"])
    ids = shuffled_ids(rng, case["n"])
    with forced_engine(case["engine"]):
        result = tma_variant(
            train,
            test,
            ids,
            variant,
            k,
            seed=case["seed"],
            within_round=case["within_round"],
            initial_k=case["initial_k"],
            chunk_rows=case["chunk_rows"],
        )
    cosines = exact_cosines(train, test)
    assert_equal(result, reference_variant(cosines, ids, variant, k, case["seed"], case["within_round"]))
    assert result.order.size == min(k, case["n"])
    assert np.unique(result.order).size == result.order.size


@settings(max_examples=60, deadline=None)
@given(
    case=cases,
    variant=st.sampled_from(["min", "max", "min_max", "max_min", "random"]),
    k=st.integers(0, 320),
)
def test_scored_variant_gives_the_same_order_and_bit_identical_scores(case: dict, variant: str, k: int) -> None:
    rng = np.random.default_rng(case["seed"])
    train = tied_vectors(rng, case["n"], case["dim"], "gaussian")
    test = tied_vectors(rng, case["m"], case["dim"], "gaussian")
    ids = shuffled_ids(rng, case["n"])
    options = {"initial_k": case["initial_k"], "chunk_rows": case["chunk_rows"]}
    with forced_engine(case["engine"]):
        scores, result = scored_tma_variant(train, test, ids, variant, k, case["seed"], 0.5, 0.7, **options)
    expected = tma_variant(train, test, ids, variant, k, case["seed"], **options)
    assert result.order.tolist() == expected.order.tolist()
    assert result.rounds.tolist() == expected.rounds.tolist()
    separate = score(train, test, 0.5, 0.7, chunk_rows=case["chunk_rows"])
    for name in ("ad", "md", "wsd"):
        assert getattr(scores, name).tobytes() == getattr(separate, name).tobytes(), name
    assert (scores.w_min, scores.w_avg) == (separate.w_min, separate.w_avg)


def test_rounds_on_a_hand_example() -> None:
    # Test points along x and y: round 0 = {a, c} (both cos 1, so by id), round 1 = {d (0.98), b (0.89)}.
    train = np.array([[1, 0], [1, 0.5], [0, 1], [0.2, 1], [-1, -1]], dtype=np.float32)
    test = np.array([[1, 0], [0, 1]], dtype=np.float32)
    ids = ["a", "b", "c", "d", "e"]
    result = tma(train, test, ids)
    assert result.order.tolist() == [0, 2, 3, 1, 4]
    assert result.rounds.tolist() == [0, 0, 1, 1, 2]
    # Farthest: e is farthest from both, so it is claimed once (claims collapse) in round 0.
    farthest = tma(train, test, ids, direction="farthest")
    assert farthest.order.tolist()[0] == 4 and farthest.rounds.tolist()[:2] == [0, 1]


def test_min_max_second_half_skips_first_half_items() -> None:
    # Two test points and four items; min takes the two nearest, so the farthest half must come from
    # the other two even though the nearest items are also the farthest of the *other* test point.
    train = np.array([[1, 0], [0, 1], [1, 1], [-1, -1]], dtype=np.float32)
    test = np.array([[1, 0], [0, 1]], dtype=np.float32)
    ids = ["a", "b", "c", "d"]
    result = tma_variant(train, test, ids, "min_max", k=4, seed=0)
    # First half: round 0 = {a, b} (tied best claims 1.0, by id). Second half over {c, d}: farthest
    # round 1 = {d} (cos -0.71 for both), round 2 = {c}; reversed, so d (the farthest) comes last.
    assert result.order.tolist() == [0, 1, 2, 3]
    assert result.rounds.tolist() == [0, 0, 2, 1]
    assert np.unique(result.order).size == 4


def test_random_is_seeded_shuffle_of_min_max_pool() -> None:
    rng = np.random.default_rng(3)
    train, test = rng.standard_normal((50, 4)), rng.standard_normal((5, 4))
    ids = shuffled_ids(rng, 50)
    pool = tma_variant(train, test, ids, "min_max", k=20, seed=0)
    first = tma_variant(train, test, ids, "random", k=20, seed=7)
    assert sorted(first.order.tolist()) == sorted(pool.order.tolist())
    assert first.order.tolist() == tma_variant(train, test, ids, "random", k=20, seed=7).order.tolist()
    assert first.order.tolist() != tma_variant(train, test, ids, "random", k=20, seed=8).order.tolist()
    # The input row order must not matter: reversed rows with the same ids give the same ids order.
    reversed_result = tma_variant(train[::-1], test, ids[::-1], "random", k=20, seed=7)
    assert [ids[::-1][i] for i in reversed_result.order] == [ids[i] for i in first.order]


def test_deepening_with_initial_k_one_matches_reference(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dynamics.arrange.tma")
    rng = np.random.default_rng(11)
    train = tied_vectors(rng, 400, 3, "duplicates")
    test = tied_vectors(rng, 25, 3, "duplicates")
    ids = shuffled_ids(rng, 400)
    expected = reference_tma(exact_cosines(train, test), ids, "nearest")
    with forced_engine("lists"):
        for chunk_rows in (1, 33, 8192):
            assert_equal(tma(train, test, ids, initial_k=1, chunk_rows=chunk_rows), expected)
    passes = [int(re.search(r"(\d+) passes", record.message).group(1)) for record in caplog.records]
    assert passes and min(passes) > 2  # lists ran out and were deepened


def test_order_does_not_depend_on_row_order_or_chunks() -> None:
    rng = np.random.default_rng(5)
    train = tied_vectors(rng, 200, 4, "integers")
    test = tied_vectors(rng, 10, 4, "integers")
    ids = shuffled_ids(rng, 200)
    base = tma(train, test, ids)
    permutation = rng.permutation(200)
    moved = tma(train[permutation], test, [ids[i] for i in permutation], chunk_rows=13, initial_k=3)
    assert [ids[i] for i in base.order] == [ids[permutation[i]] for i in moved.order]
    assert base.rounds.tolist() == moved.rounds.tolist()


def test_select_rounds_returns_union_of_rounds_in_order() -> None:
    rng = np.random.default_rng(2)
    train, test = rng.standard_normal((120, 5)), rng.standard_normal((8, 5))
    ids = shuffled_ids(rng, 120)
    result = tma(train, test, ids)
    part = select_rounds(result, 2, 5)
    keep = [p for p, r in enumerate(result.rounds.tolist()) if 2 <= r < 5]
    assert part.order.tolist() == [result.order[p] for p in keep]
    assert set(part.rounds.tolist()) == {2, 3, 4}
    assert select_rounds(result, 3, 3).order.size == 0
    with pytest.raises(ValueError, match="start <= stop"):
        select_rounds(result, 5, 2)


def test_k_larger_than_train_takes_every_item_once() -> None:
    rng = np.random.default_rng(4)
    train, test = rng.standard_normal((7, 3)), rng.standard_normal((20, 3))
    ids = shuffled_ids(rng, 7)
    assert sorted(tma(train, test, ids, max_items=100).order.tolist()) == list(range(7))
    for variant in ("min", "max", "min_max", "max_min", "random"):
        assert sorted(tma_variant(train, test, ids, variant, k=100, seed=0).order.tolist()) == list(range(7))


def test_empty_selection() -> None:
    train, test = np.eye(3), np.eye(3)
    for result in (tma(train, test, ["a", "b", "c"], max_items=0), tma(train, test, ["a", "b", "c"], max_rounds=0)):
        assert result.order.shape == (0,) and result.rounds.shape == (0,)
        assert result.order.dtype == np.int64 and result.rounds.dtype == np.int32


@pytest.mark.parametrize(
    ("train", "test", "ids", "message"),
    [
        (np.array([[1.0, np.nan], [1.0, 0.0]]), np.eye(2), ["a", "b"], "train row 0 has a NaN"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), np.eye(2), ["a", "b"], "train row 1 has zero norm"),
        (np.eye(2), np.array([[1.0, 0.0], [np.inf, 0.0]]), ["a", "b"], "test row 1 has a NaN or infinite"),
        (np.eye(2), np.zeros((1, 2)), ["a", "b"], "test row 0 has zero norm"),
        (np.zeros((0, 2)), np.eye(2), [], "train is empty"),
        (np.eye(2), np.zeros((0, 2)), ["a", "b"], "test is empty"),
        (np.eye(2), np.eye(3), ["a", "b"], "different dimensions"),
        (np.eye(2), np.eye(2), ["a", "a"], "ids must be unique: 'a' appears at rows 0 and 1"),
        (np.eye(2), np.eye(2), ["a"], "1 ids, 2 train rows"),
        (np.eye(2), np.eye(2), ["a", 3], "ids row 1 must be a string"),
    ],
)
def test_bad_inputs_raise(train: np.ndarray, test: np.ndarray, ids: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tma(train, test, ids)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"direction": "closest"}, "direction must be one of"),
        ({"within_round": "score"}, "within_round must be one of"),
        ({"max_items": -1}, "max_items must be a non-negative integer"),
        ({"max_rounds": 1.5}, "max_rounds must be a non-negative integer"),
        ({"initial_k": 0}, "initial_k must be a positive integer"),
        ({"chunk_rows": 0}, "chunk_rows must be a positive integer"),
    ],
)
def test_bad_options_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tma(np.eye(2), np.eye(2), ["a", "b"], **kwargs)


def test_bad_variant_raises() -> None:
    with pytest.raises(ValueError, match="variant must be one of"):
        tma_variant(np.eye(2), np.eye(2), ["a", "b"], "minmax", k=2, seed=0)


def test_scored_variant_uses_the_default_ratio_like_score() -> None:
    rng = np.random.default_rng(4)
    train, test = rng.standard_normal((500, 8)).astype(np.float32), rng.standard_normal((20, 8)).astype(np.float32)
    test += np.float32(1.0)  # test points share a direction, so mean(AD) is far from zero
    ids = shuffled_ids(rng, 500)
    scores, _ = scored_tma_variant(train, test, ids, "max_min", 100, seed=0, chunk_rows=64)
    expected = score(train, test, chunk_rows=64)
    assert scores.w_avg == expected.w_avg and scores.wsd.tobytes() == expected.wsd.tobytes()


@pytest.mark.parametrize("direction", ["nearest", "farthest"])
@pytest.mark.parametrize("max_rounds", [0, 1, 3, None])
def test_scored_tma_matches_tma_and_score(direction: str, max_rounds: int | None) -> None:
    rng = np.random.default_rng(5)
    train, test = rng.standard_normal((300, 6)).astype(np.float32), rng.standard_normal((12, 6)).astype(np.float32)
    ids = shuffled_ids(rng, 300)
    scores, result = scored_tma(train, test, ids, direction, max_rounds=max_rounds, w_avg=1.5, chunk_rows=50)
    expected = tma(train, test, ids, direction, max_rounds=max_rounds, chunk_rows=50)
    assert result.order.tolist() == expected.order.tolist() and result.rounds.tolist() == expected.rounds.tolist()
    assert scores.md.tobytes() == score(train, test, w_avg=1.5, chunk_rows=50).md.tobytes()
