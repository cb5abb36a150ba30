"""Test-centric Multi-turn Arrangement (TMA, SPEC §2) without building the N×M similarity matrix.

Round r = 0, 1, …: every test point claims, among training items not taken in earlier rounds, its
nearest item (largest cosine), or its farthest (smallest cosine) for ``direction="farthest"``; ties go
to the smallest id. Claims collapse, the round's items are appended in within-round order and marked
taken. Every item keeps its round id, so "train on rounds [i, i+5)" can be rebuilt (`select_rounds`).

How it avoids the N×M matrix: each test point keeps a sorted list of its top-k items (one chunked
pass over train, `candidates.CandidateSearch`) and a pointer that skips taken items; a list that runs
out is deepened (k doubled), all exhausted test points of a round, plus every list already more than
half used, together in one more pass. With `max_rounds` or `max_items` the first lists hold 2 × the
implied rounds, so a run that takes a small part of the pool needs one pass; lists past 1/32 of the
pool become whole lists (every item, one dense pass) while they fit in 2**25 entries. Memory
O(M·k + chunk·M). A run that can take a quarter of the pool or more, with N·M ≤ 2**25, uses the dense
exact matrix instead (`tma_heads.DenseHeads`): the same rounds, cheaper when the pool drains.

Exact, reproducible ties: float32 BLAS results depend on matrix shapes and thread counts, so they
only *filter* candidates (with a rigorous error margin). Every candidate is then ranked by an exact
score: the dot product of the unit vectors on a 2**-26 fixed-point grid, computed in integers that
float64 holds exactly (`candidates.fixed_point`). The order therefore never depends on chunk size,
deepening, BLAS, thread count or hardware. `scored_tma` / `scored_tma_variant` also read AD and MD off
the first pass, so WSD + TMA cost one pass over train.

    from dynamics.arrange.tma import scored_tma, select_rounds, tma, tma_variant
    result = tma(train_embeddings, test_embeddings, ids, max_rounds=30)
    scores, result = scored_tma(train_embeddings, test_embeddings, ids, max_rounds=30)  # + AD/MD/WSD, same pass
    first_five = select_rounds(result, 0, 5)    # items of rounds 0..4, in training order
    ordered_ids = [ids[i] for i in first_five.order]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dynamics.arrange.candidates import CandidateSearch
from dynamics.arrange.similarity import (
    DEFAULT_CHUNK_ROWS,
    ScoreAccumulator,
    Scores,
    check_chunk_rows,
    checked_pair,
)
from dynamics.arrange.tma_heads import DENSE_MAX_ENTRIES, CandidateLists, DenseHeads
from dynamics.ids import shuffled_by_id

log = logging.getLogger(__name__)

Direction = Literal["nearest", "farthest"]
WithinRound = Literal["distance", "index"]
Variant = Literal["min", "max", "min_max", "max_min", "random"]

# The automatic initial list length keeps M·k under this many entries (16 bytes each: 256 MiB).
_MAX_FIRST_DEPTH_ENTRIES = 2**24


@dataclass(frozen=True, eq=False)
class TmaResult:
    """A TMA arrangement: training rows in training order, each with the round that selected it."""

    order: np.ndarray  # (K,) int64 train row indices in training order
    rounds: np.ndarray  # (K,) int32 round id (0-based) of each ordered item


def _id_ranks(ids: Sequence[str], n: int) -> np.ndarray:
    """(N,) int64 position of each row in ascending id order; ties break by id, so ids must be unique."""
    id_list = list(ids)
    if len(id_list) != n:
        raise ValueError(f"ids and train differ in length: {len(id_list)} ids, {n} train rows")
    for row, item in enumerate(id_list):
        if not isinstance(item, str):
            raise ValueError(f"ids row {row} must be a string, got {type(item).__name__} {item!r}")
    # Object dtype keeps Python's str ordering (numpy's unicode dtype drops trailing NULs).
    id_array = np.empty(n, dtype=object)  # (N,) str
    id_array[:] = id_list
    by_id = np.argsort(id_array, kind="stable")  # (N,) rows in id order
    repeated = np.flatnonzero(id_array[by_id][1:] == id_array[by_id][:-1])
    if repeated.size:
        rows = sorted(by_id[repeated[0] : repeated[0] + 2].tolist())
        raise ValueError(f"ids must be unique: {id_list[rows[0]]!r} appears at rows {rows[0]} and {rows[1]}")
    ranks = np.empty(n, dtype=np.int64)
    ranks[by_id] = np.arange(n, dtype=np.int64)
    return ranks


def _check_count(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")
    return int(value)


def _check_choice(value: str, name: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, valid))}, got {value!r}")
    return value


def _use_dense(n: int, m: int, reach: int) -> bool:
    """Dense heads pay off when the (M, N) matrix is small and the run takes a quarter of the pool or more."""
    return n * m <= DENSE_MAX_ENTRIES and 4 * reach >= n


class _Arranger:
    """Validated inputs shared by the TMA runs of one variant."""

    def __init__(self, train: np.ndarray, test: np.ndarray, ids: Sequence[str], chunk_rows: int, initial_k: int):
        self.distances: ScoreAccumulator | None = None  # filled by the next run's first pass, if set
        self.chunk_rows = check_chunk_rows(chunk_rows)
        if isinstance(initial_k, bool) or not isinstance(initial_k, (int, np.integer)) or initial_k < 1:
            raise ValueError(f"initial_k must be a positive integer, got {initial_k!r}")
        self.initial_k = int(initial_k)
        self.train, self.t = checked_pair(train, test)  # (N, d) raw, (M, d) float32 L2-normalised
        self.n = self.train.shape[0]
        self.ranks = _id_ranks(ids, self.n)  # (N,) int64
        self.rows_by_rank = np.argsort(self.ranks)  # (N,) int64, inverse permutation

    def run(
        self,
        direction: Direction,
        max_items: int | None,
        max_rounds: int | None,
        within_round: WithinRound,
        excluded_rows: np.ndarray | None = None,
    ) -> TmaResult:
        """TMA rounds over the items not in `excluded_rows` (those count as taken before round 0)."""
        _check_choice(direction, "direction", ("nearest", "farthest"))
        _check_choice(within_round, "within_round", ("distance", "index"))
        max_items = _check_count(max_items, "max_items")
        max_rounds = _check_count(max_rounds, "max_rounds")
        started = time.perf_counter()
        n, m = self.n, self.t.shape[0]
        taken = np.zeros(n, dtype=bool)  # (N,) by rank
        if excluded_rows is not None:
            taken[self.ranks[excluded_rows]] = True
        limit = n - int(taken.sum()) if max_items is None else min(max_items, n - int(taken.sum()))
        out_ranks: list[np.ndarray] = []
        out_rounds: list[np.ndarray] = []
        selected = 0
        round_id = 0
        if limit > 0 and (max_rounds is None or max_rounds > 0):
            engine = self._engine(direction, taken, limit, max_items, max_rounds)
            self.distances = None
            while selected < limit and (max_rounds is None or round_id < max_rounds):
                head_rank, head_score = engine.heads(taken)
                round_ranks = self._collapse(head_rank, head_score, within_round)
                round_ranks = round_ranks[: limit - selected]
                taken[round_ranks] = True
                out_ranks.append(round_ranks)
                out_rounds.append(np.full(round_ranks.size, round_id, dtype=np.int32))
                selected += round_ranks.size
                round_id += 1
            log.info(
                "TMA %s: %d items in %d rounds from %d train x %d test rows in %.2f s (%s, %d passes over train)",
                direction,
                selected,
                round_id,
                n,
                m,
                time.perf_counter() - started,
                type(engine).__name__,
                engine.passes,
            )
        order_ranks = np.concatenate(out_ranks) if out_ranks else np.zeros(0, dtype=np.int64)
        rounds = np.concatenate(out_rounds) if out_rounds else np.zeros(0, dtype=np.int32)
        return TmaResult(order=self.rows_by_rank[order_ranks].astype(np.int64), rounds=rounds)

    def _first_depth(self, m: int, max_items: int | None, max_rounds: int | None) -> int:
        """Initial list length: `initial_k`, or twice the rounds a limit implies, whichever is larger.

        Every round uses at least one entry of every list, so a list shorter than the rounds to run is
        sure to be deepened, and each deepening is one more full pass over train.
        """
        rounds = [limit for limit in (max_rounds, None if max_items is None else -(-max_items // m)) if limit]
        wanted = 2 * min(rounds) if rounds else 0
        return max(self.initial_k, min(wanted, _MAX_FIRST_DEPTH_ENTRIES // m))

    def _engine(
        self, direction: Direction, taken: np.ndarray, limit: int, max_items: int | None, max_rounds: int | None
    ) -> CandidateLists | DenseHeads:
        """The heads engine for one run (`_use_dense` decides); both give the same rounds."""
        m = self.t.shape[0]
        searcher = CandidateSearch(
            self.train, self.t, self.ranks, 1.0 if direction == "nearest" else -1.0, self.chunk_rows
        )
        reach = limit if max_rounds is None else min(limit, max_rounds * m)  # items the run can take at most
        if _use_dense(self.n, m, reach):
            return DenseHeads(searcher, taken, self.distances)
        return CandidateLists(searcher, self._first_depth(m, max_items, max_rounds), self.distances)

    @staticmethod
    def _collapse(head_rank: np.ndarray, head_score: np.ndarray, within_round: WithinRound) -> np.ndarray:
        """The round's distinct items (as ranks) in within-round order."""
        by_item = np.lexsort((-head_score, head_rank))  # by rank, best claim first
        item_ranks = head_rank[by_item]
        first = np.ones(item_ranks.size, dtype=bool)
        first[1:] = item_ranks[1:] != item_ranks[:-1]
        item_ranks, best = item_ranks[first], head_score[by_item][first]  # ascending rank, best claim
        if within_round == "index":
            return item_ranks
        return item_ranks[np.lexsort((item_ranks, -best))]


def tma(
    train: np.ndarray,
    test: np.ndarray,
    ids: Sequence[str],
    direction: Direction = "nearest",
    max_items: int | None = None,
    max_rounds: int | None = None,
    within_round: WithinRound = "distance",
    initial_k: int = 32,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> TmaResult:
    """TMA order of the training rows: rounds of per-test-point claims, nearest (or farthest) first.

    Stops when every item is taken, after `max_items` items (the last round is trimmed to exactly
    that many, keeping its first items in within-round order) or after `max_rounds` rounds. Within a
    round items go by their best claim (nearest: highest cosine; farthest: lowest), ties by id, or with
    ``within_round="index"`` by id. Raises ValueError on bad inputs (see `l2_normalise`), duplicate ids.
    """
    arranger = _Arranger(train, test, ids, chunk_rows, initial_k)
    return arranger.run(direction, max_items, max_rounds, within_round)


def _concat(first: TmaResult, second: TmaResult) -> TmaResult:
    """`first` then `second` reversed; the second half's round ids continue after the first half's."""
    offset = int(first.rounds[-1]) + 1 if first.rounds.size else 0
    return TmaResult(
        order=np.concatenate([first.order, second.order[::-1]]),
        rounds=np.concatenate([first.rounds, second.rounds[::-1] + np.int32(offset)]).astype(np.int32),
    )


def _variant(arranger: _Arranger, variant: Variant, k: int, seed: int, within_round: WithinRound) -> TmaResult:
    _check_choice(variant, "variant", ("min", "max", "min_max", "max_min", "random"))
    k = _check_count(k, "k")
    if variant in ("min", "max"):
        return arranger.run("nearest" if variant == "min" else "farthest", k, None, within_round)
    first_direction, second_direction = ("farthest", "nearest") if variant == "max_min" else ("nearest", "farthest")
    first = arranger.run(first_direction, (k + 1) // 2, None, within_round)
    second = arranger.run(second_direction, k - first.order.size, None, within_round, excluded_rows=first.order)
    combined = _concat(first, second)
    if variant != "random":
        return combined
    shuffled = shuffled_by_id(arranger.ranks[combined.order], seed)  # the items' id ranks sort as their ids do
    return TmaResult(order=combined.order[shuffled], rounds=combined.rounds[shuffled])


def tma_variant(
    train: np.ndarray,
    test: np.ndarray,
    ids: Sequence[str],
    variant: Variant,
    k: int,
    seed: int,
    within_round: WithinRound = "distance",
    initial_k: int = 32,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> TmaResult:
    """The Study B TMA settings, K = `k` items (fewer only if train has fewer rows).

    - ``min`` / ``max``: nearest / farthest rounds up to K items.
    - ``min_max``: nearest rounds up to ceil(K/2) items, then farthest rounds over the items the first
      half did not take, up to the remaining K - ceil(K/2), appended in reverse (so the farthest item
      comes last). The second half's round ids continue after the first half's: first-half rounds
      0..R-1, second-half farthest round r gets id R + r (they descend along the reversed tail).
    - ``max_min``: the same with the directions swapped.
    - ``random``: the ``min_max`` items sorted by id, then shuffled with ``np.random.default_rng(seed)``;
      each item keeps its ``min_max`` round id. `seed` is used only here.
    """
    return _variant(_Arranger(train, test, ids, chunk_rows, initial_k), variant, k, seed, within_round)


def scored_tma_variant(
    train: np.ndarray,
    test: np.ndarray,
    ids: Sequence[str],
    variant: Variant,
    k: int,
    seed: int,
    w_min: float = 1.0,
    w_avg: float | None = None,
    within_round: WithinRound = "distance",
    initial_k: int = 32,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[Scores, TmaResult]:
    """`tma_variant` plus every row's AD/MD/WSD (as `score`), with the scores taken from TMA's first pass.

    The first candidate search computes X_chunk @ T.T for every chunk anyway; reading AD and MD off it
    saves the separate scoring pass over train (the dominant cost at N = 10⁶). The scores are bit-identical
    to `score(train, test, w_min, w_avg, chunk_rows)`.
    """
    arranger = _Arranger(train, test, ids, chunk_rows, initial_k)
    return _scored(arranger, lambda: _variant(arranger, variant, k, seed, within_round), w_min, w_avg)


def scored_tma(
    train: np.ndarray,
    test: np.ndarray,
    ids: Sequence[str],
    direction: Direction = "nearest",
    max_items: int | None = None,
    max_rounds: int | None = None,
    w_min: float = 1.0,
    w_avg: float | None = None,
    within_round: WithinRound = "distance",
    initial_k: int = 32,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[Scores, TmaResult]:
    """`tma` plus every row's AD/MD/WSD, read off TMA's first pass as in `scored_tma_variant`."""
    arranger = _Arranger(train, test, ids, chunk_rows, initial_k)
    return _scored(arranger, lambda: arranger.run(direction, max_items, max_rounds, within_round), w_min, w_avg)


def _scored(
    arranger: _Arranger, arrange: Callable[[], TmaResult], w_min: float, w_avg: float | None
) -> tuple[Scores, TmaResult]:
    distances = ScoreAccumulator(arranger.n, arranger.t)
    arranger.distances = distances
    result = arrange()
    if not distances.complete:  # nothing to select, so no candidate pass ran
        distances.read(arranger.train, np.ascontiguousarray(arranger.t.T), arranger.chunk_rows)
    return distances.scores(w_min=w_min, w_avg=w_avg), result


def select_rounds(result: TmaResult, start: int, stop: int) -> TmaResult:
    """The items of rounds [start, stop) in their training order (the SPEC's "rounds [i, i+5)" ablation)."""
    if start > stop:
        raise ValueError(f"select_rounds needs start <= stop, got start={start}, stop={stop}")
    keep = (result.rounds >= start) & (result.rounds < stop)
    return TmaResult(order=result.order[keep], rounds=result.rounds[keep])
