"""Where TMA finds each test point's best untaken item every round: candidate lists, or a dense matrix.

Both give the same heads (exact fixed-point scores, ties by id rank), so the choice is only about cost:

- `CandidateLists`: per test point a sorted top-k list and a pointer that skips taken items, deepened
  by more passes over train when it runs out. Memory O(M·k); the engine for large pools.
- `DenseHeads`: the (M, N) matrix of exact scores, items in rank order; each round is one argmax per
  test point and taken items become -inf. For small pools that TMA takes most of (the pool drains,
  rounds·M ≳ N), where lists would be deepened to nearly the whole pool anyway.
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
    """The (M, N) exact score matrix in rank order; taken items are set to -inf as rounds claim them.

    Once a quarter of the remaining columns are taken, they are dropped, so a draining pool costs about
    twice its first round's scan instead of a full scan every round.
    """

    def __init__(self, searcher: CandidateSearch, taken: np.ndarray, distances: ScoreAccumulator | None):
        m = searcher.t.shape[0]
        with pass_progress(f"{searcher.name} dense pass", searcher.train.shape[0]):
            self.scores = searcher.exact_by_rank(np.arange(m), distances)  # (M, W) float64, W columns left
        self.rank_of_column = np.arange(taken.shape[0])  # (W,) item rank of each remaining column
        self.masked = np.zeros(taken.shape[0], dtype=bool)  # (N,) items whose column is -inf or dropped
        self.rows = np.arange(m)
        self.passes = 1
        self._mask(taken)

    def _mask(self, taken: np.ndarray) -> None:
        newly = np.flatnonzero(taken & ~self.masked)  # ranks
        self.masked[newly] = True
        dead = self.masked[self.rank_of_column]  # (W,)
        if 4 * int(dead.sum()) >= dead.size:
            keep = ~dead
            self.scores = np.ascontiguousarray(self.scores[:, keep])
            self.rank_of_column = self.rank_of_column[keep]
        else:
            # Columns are in rank order, so a rank's column is found by binary search.
            self.scores[:, np.searchsorted(self.rank_of_column, newly)] = -np.inf

    def heads(self, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each test point's best untaken item: argmax takes the first maximum, the smallest rank on ties."""
        self._mask(taken)
        column = np.argmax(self.scores, axis=1)  # (M,)
        return self.rank_of_column[column], self.scores[self.rows, column]
