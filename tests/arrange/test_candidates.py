"""Exact candidate lists: fixed-point scores are order-independent, and every way of computing them agrees."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics.arrange import candidates, tma_heads
from dynamics.arrange import tma as tma_module
from dynamics.arrange.candidates import exact_scores, fixed_point
from dynamics.arrange.similarity import l2_normalise
from dynamics.arrange.tma import tma, tma_variant


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return l2_normalise(rng.standard_normal((n, dim)).astype(np.float32), "rows")


@pytest.mark.parametrize("dim", [3, 384, 4096])
def test_fixed_point_dot_products_do_not_depend_on_summation_order(dim: int) -> None:
    rng = np.random.default_rng(dim)
    unit_x, unit_t = _unit(rng, 64, dim), _unit(rng, 64, dim)
    x, t = fixed_point(unit_x), fixed_point(unit_t)
    integer = (x.astype(np.int64) * t.astype(np.int64)).sum(axis=1).astype(np.float64) * 2.0**-52  # exact
    shuffled = rng.permutation(dim)
    assert np.array_equal(exact_scores(x, t), integer)  # einsum
    assert np.array_equal(exact_scores(x[:, ::-1].copy(), t[:, ::-1].copy()), integer)
    assert np.array_equal(np.diag(x[:, shuffled] @ t[:, shuffled].T) * 2.0**-52, integer)  # BLAS, any order
    # The grid is fine: the scores are the cosines of the float32 rows to within 2**-26·sqrt(d).
    cosines = np.einsum("ij,ij->i", unit_x.astype(np.float64), unit_t.astype(np.float64))
    assert np.abs(integer - cosines).max() < 2.0**-26 * np.sqrt(dim)


def test_dense_and_pairwise_exact_scores_give_the_same_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    train = rng.integers(-2, 3, (400, 6)).astype(np.float32)  # many exact ties
    train[~train.any(axis=1), 0] = 1.0
    test = rng.standard_normal((25, 6)).astype(np.float32)
    ids = [f"id{v}" for v in rng.permutation(400)]
    results = []
    monkeypatch.setattr(tma_module, "_use_dense", lambda n, m, reach: False)  # candidate lists
    for share in (0.0, np.inf):  # every shortlist dense, then every shortlist pairwise
        monkeypatch.setattr(candidates, "_DENSE_SHARE", share)
        results.append(tma_variant(train, test, ids, "min_max", 300, seed=0, initial_k=2, chunk_rows=37))
    assert results[0].order.tolist() == results[1].order.tolist()
    assert results[0].rounds.tolist() == results[1].rounds.tolist()


def test_whole_lists_and_doubled_lists_give_the_same_orders(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    rng = np.random.default_rng(2)
    train, test = rng.standard_normal((600, 5)).astype(np.float32), rng.standard_normal((40, 5)).astype(np.float32)
    ids = [f"id{v}" for v in rng.permutation(600)]
    monkeypatch.setattr(tma_module, "_use_dense", lambda n, m, reach: False)
    whole = tma(train, test, ids, "farthest", initial_k=1, chunk_rows=64)  # drains the pool: lists go whole
    monkeypatch.setattr(tma_heads, "WHOLE_LIST_MAX_ENTRIES", 0)
    doubled = tma(train, test, ids, "farthest", initial_k=1, chunk_rows=64)
    monkeypatch.setattr(tma_module, "_use_dense", lambda n, m, reach: True)
    dense = tma(train, test, ids, "farthest", initial_k=1, chunk_rows=64)
    assert dense.order.tolist() == whole.order.tolist() and dense.rounds.tolist() == whole.rounds.tolist()
    assert whole.order.size == 600 and whole.order.tolist() == doubled.order.tolist()
    assert whole.rounds.tolist() == doubled.rounds.tolist()


@pytest.mark.parametrize("list_length", [1, 3, 64])
@pytest.mark.parametrize("style", ["ties", "gaussian"])
def test_dense_engine_short_lists_and_refills_match_candidate_lists(
    monkeypatch: pytest.MonkeyPatch, list_length: int, style: str
) -> None:
    rng = np.random.default_rng(list_length)
    if style == "ties":  # many items share a score: refills meet ties at a list's end, and whole tied lists
        train = rng.integers(-1, 2, (500, 3)).astype(np.float32)
        train[~train.any(axis=1), 0] = 1.0
    else:
        train = rng.standard_normal((500, 3)).astype(np.float32)
    test = rng.standard_normal((30, 3)).astype(np.float32)
    ids = [f"id{v}" for v in rng.permutation(500)]
    monkeypatch.setattr(tma_heads, "_DENSE_LIST", list_length)
    results = {}
    for engine in ("dense", "lists"):
        monkeypatch.setattr(tma_module, "_use_dense", lambda n, m, reach, engine=engine: engine == "dense")
        results[engine] = tma_variant(train, test, ids, "min_max", 500, seed=0)
    assert results["dense"].order.tolist() == results["lists"].order.tolist()
    assert results["dense"].rounds.tolist() == results["lists"].rounds.tolist()
