"""Where TMA finds each test point's best untaken item every round: candidate lists, or a dense matrix.

Both give the same heads (exact fixed-point scores, ties by id rank), so the choice is only about cost:

- `CandidateLists`: per test point a sorted top-k list and a pointer that skips taken items, deepened
  by more passes over train when it runs out. Memory O(M·k); the engine for large pools.
- `DenseHeads`: the (M, N) matrix of exact scores, items in rank order, read through short sorted
  lists refilled from it (taken items become -inf). For small pools that TMA takes most of (the pool
  drains, rounds·M ≳ N), where candidate lists would be deepened to nearly the whole pool anyway.
"""

from __future__ import annotations

import numpy as np

from dynamics.arrange.candidates import CandidateSearch
from dynamics.arrange.progress import pass_progress
from dynamics.arrange.similarity import ScoreAccumulator

# Whole candidate lists (every item per test point) are taken only while they hold at most this many
# entries (16 bytes each: 512 MiB); beyond it, lists keep doubling.
WHOLE_LIST_MAX_ENTRIES = 2**25

# The dense matrix is used up to this many entries (8 bytes each: 256 MiB).
DENSE_MAX_ENTRIES = 2**25

# Items per test point the dense engine keeps sorted between refills from the matrix.
_DENSE_LIST = 64

# A refill copies at most this many matrix entries at a time (16 MiB).
_REFILL_BLOCK_VALUES = 2**21


class CandidateLists:
    """Sorted candidate lists with pointers; `heads` deepens the lists that run out."""

    def __init__(self, searcher: CandidateSearch, depth: int, distances: ScoreAccumulator | None):
        m = searcher.t.shape[0]
        self.searcher = searcher
        scores, ranks = searcher.top_k(np.arange(m), depth, distances)  # (M, k) each
        self.scores = list(scores)
        self.ranks = list(ranks)
        self.pointer = np.zeros(m, dtype=np.int64)  # (M,) next candidate of each test point

    @property
    def passes(self) -> int:
        return self.searcher.passes

    def heads(self, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each test point's best untaken item: (M,) ranks and (M,) scores; deepens exhausted lists."""
        pointer, lists_rank = self.pointer, self.ranks
        m = pointer.shape[0]
        stale = [j for j in range(m) if taken[lists_rank[j][pointer[j]]]] if m else []
        while stale:
            exhausted = self._advance(stale, taken)
            if not exhausted:
                break
            self._deepen(exhausted, taken.shape[0])
            stale = exhausted
        head_rank = np.fromiter((lists_rank[j][pointer[j]] for j in range(m)), dtype=np.int64, count=m)
        head_score = np.fromiter((self.scores[j][pointer[j]] for j in range(m)), dtype=np.float64, count=m)
        return head_rank, head_score

    def _advance(self, stale: list[int], taken: np.ndarray) -> list[int]:
        """Move stale pointers to their next untaken item; returns the test points whose list ran out."""
        exhausted = []
        for j in stale:
            free = ~taken[self.ranks[j][self.pointer[j] :]]
            step = int(free.argmax())
            if free[step]:
                self.pointer[j] += step
            else:
                # A full-length list cannot run out while some item is untaken.
                assert self.ranks[j].size < taken.shape[0], "TMA invariant broken: complete list exhausted"
                self.pointer[j] = self.ranks[j].size
                exhausted.append(j)
        return exhausted

    def _deepen(self, exhausted: list[int], n: int) -> None:
        """One more pass: the exhausted lists, and every list already more than half used, at twice the depth."""
        m = self.pointer.shape[0]
        lengths = np.fromiter((self.ranks[j].size for j in range(m)), dtype=np.int64, count=m)
        batch = np.union1d(np.asarray(exhausted, dtype=np.int64), np.flatnonzero(2 * self.pointer >= lengths))
        batch = batch[lengths[batch] < n]
        depth = 2 * int(lengths[batch].max())
        # Past 1/32 of the pool, sorting shortlists costs more than dense whole lists (measured at N=20k, M=1k).
        if 32 * depth >= n and batch.size * n <= WHOLE_LIST_MAX_ENTRIES:
            depth = n
        scores, ranks = self.searcher.top_k(batch, depth)
        for row, j in enumerate(batch.tolist()):
            # The deeper list starts with the old one (same exact order), so the pointer stays valid.
            self.scores[j], self.ranks[j] = scores[row], ranks[row]


class DenseHeads:
    """The (M, N) exact score matrix in rank order, read through short per-test-point lists.

    Every round takes each test point's head, so each needs its next best item every round; a sorted list
    of its best `_DENSE_LIST` items (refilled from the matrix when used up) answers that without scanning
    the row. Taken items become -inf in the matrix before a refill, and once half of the remaining
    columns are taken they are dropped.
    """

    def __init__(self, searcher: CandidateSearch, taken: np.ndarray, distances: ScoreAccumulator | None):
        m = searcher.t.shape[0]
        with pass_progress(f"{searcher.name} dense pass", searcher.train.shape[0]):
            self.scores = searcher.exact_by_rank(np.arange(m), distances)  # (M, W) float64, W columns left
        self.rank_of_column = np.arange(taken.shape[0])  # (W,) item rank of each remaining column
        self.masked = np.zeros(taken.shape[0], dtype=bool)  # (N,) items whose column is -inf or dropped
        self.list_rank = np.zeros((m, 0), dtype=np.int64)  # (M, L) best items of each row, best first
        self.list_score = np.zeros((m, 0), dtype=np.float64)  # (M, L)
        self.valid = np.zeros(m, dtype=np.int64)  # (M,) leading list entries known to be the row's best
        self.passes = 1

    def heads(self, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each test point's best untaken item (M,) and its score (M,): ties go to the smallest rank."""
        if self.list_rank.shape[1] == 0:
            self._refill(np.arange(self.valid.size), taken)
        free = ~taken[self.list_rank] & (np.arange(self.list_rank.shape[1]) < self.valid[:, None])  # (M, L)
        used_up = np.flatnonzero(~free.any(axis=1))
        if used_up.size:
            self._refill(used_up, taken)
            free = ~taken[self.list_rank] & (np.arange(self.list_rank.shape[1]) < self.valid[:, None])
        position = free.argmax(axis=1)  # (M,) first free entry; a refilled row always has one
        rows = np.arange(self.valid.size)
        return self.list_rank[rows, position], self.list_score[rows, position]

    def _mask(self, taken: np.ndarray) -> None:
        newly = np.flatnonzero(taken & ~self.masked)  # ranks
        self.masked[newly] = True
        dead = self.masked[self.rank_of_column]  # (W,)
        if 2 * int(dead.sum()) >= dead.size:
            keep = ~dead
            self.scores = np.ascontiguousarray(self.scores[:, keep])
            self.rank_of_column = self.rank_of_column[keep]
        else:
            # Columns are in rank order, so a rank's column is found by binary search.
            self.scores[:, np.searchsorted(self.rank_of_column, newly)] = -np.inf

    def _refill(self, rows: np.ndarray, taken: np.ndarray) -> None:
        """New lists for `rows`: their best `_DENSE_LIST` untaken items, sorted by (score desc, rank asc)."""
        self._mask(taken)
        width = self.scores.shape[1]
        length = min(_DENSE_LIST, width)
        if self.list_rank.shape[1] != length:  # first call, or fewer columns left than a list holds
            m = self.valid.size
            self.list_rank = np.zeros((m, length), dtype=np.int64)
            self.list_score = np.full((m, length), -np.inf)
            rows = np.arange(m)
        step = max(1, _REFILL_BLOCK_VALUES // width)
        for start in range(0, rows.size, step):
            self._refill_block(rows[start : start + step], length)

    def _refill_block(self, rows: np.ndarray, length: int) -> None:
        """Only entries scoring above the list's last score surely precede everything outside it (an item
        outside may tie with the last one and have a smaller rank), so only they count as valid; a row whose
        whole list ties falls back to its argmax (the first maximum: the smallest rank)."""
        width = self.scores.shape[1]
        block = self.scores[rows]  # (R, W)
        if length < width:
            chosen = np.argpartition(block, width - length, axis=1)[:, width - length :]  # (R, L) columns
        else:
            chosen = np.broadcast_to(np.arange(width), (rows.size, width))
        chosen_score = np.take_along_axis(block, chosen, axis=1)  # (R, L)
        chosen_rank = self.rank_of_column[chosen]  # (R, L)
        order = np.lexsort((chosen_rank, -chosen_score), axis=1)  # score desc, then rank asc
        chosen_score = np.take_along_axis(chosen_score, order, axis=1)
        chosen_rank = np.take_along_axis(chosen_rank, order, axis=1)
        # With every remaining column in the list, all of it is certain; otherwise only what beats the last.
        certain = (chosen_score > chosen_score[:, -1:]) | (length == width)
        valid = (np.isfinite(chosen_score) & certain).sum(axis=1)  # (R,)
        ties = np.flatnonzero(valid == 0)
        if ties.size:
            column = np.argmax(block[ties], axis=1)
            chosen_rank[ties, 0] = self.rank_of_column[column]
            chosen_score[ties, 0] = block[ties, column]
            valid[ties] = 1
        self.list_rank[rows], self.list_score[rows], self.valid[rows] = chosen_rank, chosen_score, valid
