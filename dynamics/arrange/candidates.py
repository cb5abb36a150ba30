"""Exact top-k training items per test point by chunked passes over train, without the N×M matrix.

TMA (`dynamics.arrange.tma`) keeps one sorted candidate list per test point and deepens it on demand;
this module produces those lists. Float32 BLAS products only *filter* candidates, within a proven error
margin; candidates are then ranked by exact fixed-point cosines (`fixed_point`), ties by id rank, so a
list never depends on chunk size, BLAS or thread count. Lists of the whole pool skip the filter: one dense
pass of exact scores and a stable sort per test point.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from dynamics.arrange.progress import advance, pass_progress
from dynamics.arrange.similarity import ScoreAccumulator, normalise_block, normalised_chunks

log = logging.getLogger(__name__)

# Exact scores are computed for at most this many float64 values at a time (16 MiB of temporaries).
_EXACT_BLOCK_VALUES = 2**21

# Unit vectors become integers on a grid of 2**-_FIXED_POINT_BITS (see `fixed_point`).
_FIXED_POINT_BITS = 26

# A shortlist covering at least this share of its (rows × columns) block is scored by dense float64 products.
_DENSE_SHARE = 1 / 16


def fixed_point(unit_rows: np.ndarray) -> np.ndarray:
    """(n, d) float64 integers round(x · 2**26) of unit float32 rows: the grid exact scores live on.

    The dot product of two such rows is a sum of integer products whose magnitudes add up to at most about
    2**52 (Cauchy–Schwarz on unit rows), so every partial sum is an integer float64 holds exactly: BLAS,
    einsum or a GPU return the same bits in any summation order, blocking or thread count. The score
    (dot · 2**-52) is the cosine to within 2**-26·sqrt(d), far below embedding noise, and equal scores
    are true ties, broken by id.
    """
    return np.rint(unit_rows.astype(np.float64) * 2.0**_FIXED_POINT_BITS)


def exact_scores(x_fixed: np.ndarray, t_fixed: np.ndarray) -> np.ndarray:
    """(P,) float64 exact scores of paired rows of two `fixed_point` arrays, (P, d) each."""
    return np.einsum("ij,ij->i", x_fixed, t_fixed) * 2.0 ** (-2 * _FIXED_POINT_BITS)


class CandidateSearch:
    """Exact per-test-point top-k lists by chunked passes over train, in the tie order (score desc, rank asc).

    Scores are cosines times `sign` (+1 nearest, -1 farthest), so "best" is always "largest".
    """

    def __init__(self, train: np.ndarray, t: np.ndarray, ranks: np.ndarray, sign: float, chunk_rows: int):
        self.name = "TMA nearest" if sign > 0 else "TMA farthest"
        self.train = train  # (N, d) raw; normalised chunk by chunk
        self.t = t  # (M, d) float32, L2-normalised
        self.t_transposed = np.ascontiguousarray(t.T)  # (d, M) float32
        self.ranks = ranks  # (N,) int64
        self.sign = sign
        self.chunk_rows = chunk_rows
        dim = t.shape[1]
        # |float32 BLAS dot - true dot| <= d·u·Σ|x_k·t_k| <= d·u (unit rows, u = 2**-24) in any summation order;
        # twice that covers the norms' own rounding. The fixed-point score is within 2**-27·(|x|₁ + |t|₁) +
        # d·2**-54 <= 2**-26·sqrt(d) + d·2**-54 of the true dot.
        self.margin = 2.0 * (dim + 2) * 2.0**-24 + 2.0**-_FIXED_POINT_BITS * np.sqrt(dim) + dim * 2.0**-54
        self.passes = 0

    def top_k(
        self, columns: np.ndarray, k: int, distances: ScoreAccumulator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ranks), each (len(columns), min(k, N)): every column's best items, best first.

        The pass keeps a shortlist by approximate (BLAS) score: every item whose approximate score is
        within 2·margin of its column's k-th best, which provably holds the exact top k. Exact cosines
        are computed once, for the shortlist only. A pass over every column can also fill `distances`
        (AD, MD) from the products it computes anyway.
        """
        n = self.train.shape[0]
        k = min(k, n)
        width = columns.shape[0]
        if distances is not None and width != self.t.shape[0]:
            raise ValueError(f"distances need every test point; this pass covers {width} of {self.t.shape[0]}")
        started = time.perf_counter()
        with pass_progress(f"{self.name} pass {self.passes + 1}", n):
            if k == n:
                scores, ranks = self._whole_lists(columns, distances)
            else:
                column, _, row = self._shortlist(columns, k, distances)
                scores, ranks = self._exact_top_k(columns, column, row, k)
        self.passes += 1
        log.debug(
            "top-%d pass for %d test points over %d train rows in %.2f s", k, width, n, time.perf_counter() - started
        )
        return scores, ranks

    def _shortlist(
        self, columns: np.ndarray, k: int, distances: ScoreAccumulator | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(column, approximate score, train row) of every item that may be in its column's exact top k."""
        width = columns.shape[0]
        floor = np.full(width, -np.inf, dtype=np.float32)  # (C,) approximate scores below this cannot win
        t_transposed = self.t_transposed if width == self.t.shape[0] else self.t_transposed[:, columns]  # (d, C)
        shortlist: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        pending = 0
        for rows, x in normalised_chunks(self.train, self.chunk_rows):
            approx = x @ t_transposed  # (c, C) float32, only a filter
            if distances is not None:
                distances.add(rows, x, approx)
            if self.sign < 0:
                np.negative(approx, out=approx)
            threshold = floor
            unfilled = np.flatnonzero(np.isneginf(floor))
            if unfilled.size and approx.shape[0] > k:
                # k items of this chunk score at least v (its k-th approximate score), so the exact k-th best
                # is at least v - margin, and nothing under v - 2·margin can reach it.
                kth = np.partition(approx[:, unfilled], approx.shape[0] - k, axis=0)[approx.shape[0] - k]
                threshold = floor.copy()
                threshold[unfilled] = kth - 2.0 * self.margin
            # flatnonzero + divmod is ~4x faster than a 2-D nonzero on this (c, C) mask.
            hit_rows, hit_columns = np.divmod(np.flatnonzero(approx >= threshold), width)
            shortlist.append((hit_columns, approx[hit_rows, hit_columns], rows.start + hit_rows))
            pending += hit_rows.size
            # Pruning lazily is still exact: floors only rise, so an older floor never drops a winner.
            if pending >= 4 * width * k or unfilled.size:
                shortlist = [self._prune(shortlist, floor, k)]
                pending = shortlist[0][0].size
            advance(rows.stop - rows.start)
        return self._prune(shortlist, floor, k)

    def exact_by_rank(self, columns: np.ndarray, distances: ScoreAccumulator | None = None) -> np.ndarray:
        """(C, N) float64 exact scores of every item (in id-rank order) for each column: one dense pass.

        Can fill `distances` (AD, MD) on the way, from the same float32 products `score` uses.
        """
        n = self.train.shape[0]
        t_fixed_transposed = np.ascontiguousarray(fixed_point(self.t[columns]).T)  # (d, C) float64
        by_rank = np.empty((columns.size, n), dtype=np.float64)  # (C, N)
        for rows, x in normalised_chunks(self.train, self.chunk_rows):
            if distances is not None:
                distances.add(rows, x, x @ self.t_transposed)
            by_rank[:, self.ranks[rows]] = (fixed_point(x) @ t_fixed_transposed).T
            advance(rows.stop - rows.start)
        by_rank *= self.sign * 2.0 ** (-2 * _FIXED_POINT_BITS)
        return by_rank

    def _whole_lists(self, columns: np.ndarray, distances: ScoreAccumulator | None) -> tuple[np.ndarray, np.ndarray]:
        """Every item for every column, best first: dense exact scores and one stable sort per column.

        No filter and no shortlist: when lists must hold (nearly) the whole pool, this is cheaper than
        sorting a shortlist of the same size by three keys.
        """
        by_rank = self.exact_by_rank(columns, distances)  # (C, N)
        # A stable sort on the negated score keeps equal scores in rank order: exactly the tie rule.
        np.negative(by_rank, out=by_rank)
        ranks = np.argsort(by_rank, axis=1, kind="stable")  # (C, N) int64
        scores = np.take_along_axis(by_rank, ranks, axis=1)  # (C, N)
        np.negative(scores, out=scores)
        return scores, ranks

    def _prune(
        self, shortlist: list[tuple[np.ndarray, np.ndarray, np.ndarray]], floor: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raise each column's floor to (its k-th approximate score - 2·margin) and drop entries under it."""
        column, approx, row = (np.concatenate(parts) for parts in zip(*shortlist, strict=True))
        order = np.lexsort((-approx, column))  # by column, then approximate score descending
        column, approx, row = column[order], approx[order], row[order]
        start = np.searchsorted(column, np.arange(floor.size))  # (C,) first entry of each column
        count = np.diff(np.append(start, column.size))  # (C,)
        full = np.flatnonzero(count >= k)
        floor[full] = np.maximum(floor[full], approx[start[full] + k - 1] - 2.0 * self.margin)
        keep = approx >= floor[column]
        return column[keep], approx[keep], row[keep]

    def _exact_top_k(
        self, columns: np.ndarray, column: np.ndarray, row: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rank the shortlist (column, train row) by exact score desc, then id rank asc; keep k per column."""
        exact = self._exact(columns, column, row) * self.sign  # (P,) float64
        ranks = self.ranks[row]
        order = np.lexsort((ranks, -exact, column))  # by column, then score desc, then rank asc
        column, exact, ranks = column[order], exact[order], ranks[order]
        position = np.arange(column.size) - np.searchsorted(column, np.arange(columns.size))[column]
        keep = position < k
        best_score = np.empty((columns.size, k), dtype=np.float64)  # (C, k)
        best_rank = np.empty((columns.size, k), dtype=np.int64)  # (C, k)
        best_score[column[keep], position[keep]] = exact[keep]
        best_rank[column[keep], position[keep]] = ranks[keep]
        return best_score, best_rank

    def _fixed_rows(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), d) `fixed_point` of train[rows], normalised exactly as the pass normalised them."""
        unit = np.empty((rows.size, self.t.shape[1]), dtype=np.float32)  # (b, d) float32
        normalise_block(self.train[rows], "train", 0, unit)
        return fixed_point(unit)

    def _exact(self, columns: np.ndarray, column: np.ndarray, row: np.ndarray) -> np.ndarray:
        """(P,) exact cosines of the shortlist pairs: dense products where the shortlist is dense, else pairwise.

        Both give the same bits (integer arithmetic), so the choice never changes an order.
        """
        dim = self.t.shape[1]
        t_fixed = fixed_point(self.t[columns])  # (C, d) float64
        exact = np.empty(column.size, dtype=np.float64)  # (P,)
        unique_rows, pair_row = np.unique(row, return_inverse=True)  # (U,), (P,) index into unique_rows
        if column.size < _DENSE_SHARE * unique_rows.size * columns.size:
            block = max(1, _EXACT_BLOCK_VALUES // dim)
            for start in range(0, column.size, block):
                part = slice(start, start + block)
                exact[part] = exact_scores(self._fixed_rows(row[part]), t_fixed[column[part]])
            return exact
        # Dense: each block of distinct rows against every column, one float64 BLAS product (exact integers).
        by_row = np.argsort(pair_row, kind="stable")  # (P,) pairs grouped by row
        block = max(1, _EXACT_BLOCK_VALUES // max(dim, columns.size))
        bounds = np.searchsorted(pair_row[by_row], np.arange(0, unique_rows.size + block, block))
        t_fixed_transposed = np.ascontiguousarray(t_fixed.T)  # (d, C)
        for number, start in enumerate(range(0, unique_rows.size, block)):
            dots = self._fixed_rows(unique_rows[start : start + block]) @ t_fixed_transposed  # (b, C) exact
            pairs = by_row[bounds[number] : bounds[number + 1]]
            exact[pairs] = dots[pair_row[pairs] - start, column[pairs]]
        return exact * 2.0 ** (-2 * _FIXED_POINT_BITS)
