"""Exact similarity scores of training examples against a test set (SPEC §2).

Distance is d(i, j) = -cos(x_i, t_j). Three scores per training example:

- AD_i  = mean_j d(i, j), computed as -x̂_i · mean_j(t̂_j): O(N·d), no N×M matrix.
- MD_i  = min_j d(i, j), computed from chunked products X_chunk @ T.T: memory O(chunk·M).
- WSD_i = w_min·MD_i + w_avg·AD_i, with w_avg defaulting to mean(MD) / mean(AD).

Inputs are validated and L2-normalised here, so callers can pass raw embeddings. Training rows are
normalised chunk by chunk, so beyond inputs and outputs the working memory is O(chunk·(M + d)): no
normalised copy of the training set is held.

    from dynamics.arrange.similarity import score
    scores = score(train_embeddings, test_embeddings)   # scores.ad, scores.md, scores.wsd
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dynamics.arrange.progress import advance, pass_progress

log = logging.getLogger(__name__)

# A float32 sum of squares below this may have lost terms to underflow (and above float32's range it
# overflows to inf); such rows are rare and are redone in float64 after scaling by their largest value.
# NaN/inf and all-zero rows fail the same test, and the float64 path is where they are reported.
_MIN_SAFE_SUM_OF_SQUARES = 1e-20

# Rows normalised at a time by l2_normalise: 2**22 values keeps temporaries at 16 MiB whatever the dimension.
_NORMALISE_BLOCK_VALUES = 2**22

# Training rows per chunk of every pass over train. Scores and TMA share it: float32 BLAS products of a row
# can change in the last bit with the shape of the chunk around it, so one chunk size keeps MD identical
# whether it comes from `score` or from TMA's first candidate pass.
DEFAULT_CHUNK_ROWS = 8192

# Below this |mean(AD)| the default ratio mean(MD) / mean(AD) is numerically meaningless.
_DEGENERATE_MEAN_AD = 1e-6


@dataclass(frozen=True, eq=False)
class Scores:
    """Per-training-example scores; each array is (N,) float32 and read-only."""

    ad: np.ndarray  # (N,) float32, average distance to the test set
    md: np.ndarray  # (N,) float32, distance to the nearest test point
    wsd: np.ndarray  # (N,) float32, w_min·MD + w_avg·AD
    w_min: float
    w_avg: float


def _check_matrix(vectors: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (rows, dim), got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no rows (shape {array.shape})")
    if array.shape[1] == 0:
        raise ValueError(f"{name} is empty: its rows have dimension 0 (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def normalise_block(block: np.ndarray, name: str, first_row: int, out: np.ndarray) -> None:
    """Validate `block` (rows first_row.. of the array `name`) and write its unit rows into `out`."""
    # Fast path in float32 for every row; values outside float32's range become inf or 0 in the cast.
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        block32 = block.astype(np.float32, copy=False)  # (b, d) float32
        sum_of_squares = np.einsum("ij,ij->i", block32, block32)  # (b,) float32
        np.divide(block32, np.sqrt(sum_of_squares)[:, None], out=out)
    # NaN/inf values, zero rows, and rows whose squares overflow or underflow float32 all fail this
    # test, so the clean majority is never scanned twice.
    safe = (sum_of_squares >= _MIN_SAFE_SUM_OF_SQUARES) & np.isfinite(sum_of_squares)  # (b,)
    for offset in np.flatnonzero(~safe).tolist():
        out[offset] = _normalise_row_in_float64(block[offset], name, first_row + offset)


def _normalise_row_in_float64(row: np.ndarray, name: str, index: int) -> np.ndarray:
    values = row.astype(np.float64)  # (d,) float64
    if not np.isfinite(values).all():
        raise ValueError(f"{name} row {index} has a NaN or infinite value, so its cosine similarity is undefined")
    largest = np.abs(values).max()
    if largest == 0.0:
        raise ValueError(f"{name} row {index} has zero norm, so its cosine similarity is undefined")
    # Dividing by the largest magnitude first keeps the sum of squares away from overflow and underflow.
    values /= largest
    values /= np.sqrt(values @ values)
    return values


def l2_normalise(vectors: np.ndarray, name: str) -> np.ndarray:
    """Return a new (n, d) float32 array whose rows have unit L2 norm.

    Raises ValueError naming `name` and the first offending row when the array is not 2-D, is empty,
    or has a row with a NaN/infinite value or zero norm (cosine is undefined for such a row).
    """
    array = _check_matrix(vectors, name)  # (n, d)
    n, dim = array.shape
    out = np.empty((n, dim), dtype=np.float32)  # (n, d) float32, L2-normalised
    block_rows = max(1, _NORMALISE_BLOCK_VALUES // dim)
    for start in range(0, n, block_rows):
        normalise_block(array[start : start + block_rows], name, start, out[start : start + block_rows])
    return out


def normalised_chunks(train: np.ndarray, chunk_rows: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (rows, unit rows of train[rows]) chunk by chunk, so no normalised copy of train is made.

    The yielded array is a buffer reused by the next chunk: use it before advancing.
    """
    n, dim = train.shape
    buffer = np.empty((min(chunk_rows, n), dim), dtype=np.float32)  # (chunk, d) float32
    for start in range(0, n, chunk_rows):
        rows = slice(start, min(start + chunk_rows, n))
        chunk = buffer[: rows.stop - start]  # (chunk, d) float32, L2-normalised below
        normalise_block(train[rows], "train", start, chunk)
        yield rows, chunk


def checked_pair(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train as given, test L2-normalised), after checking both and that their dimensions agree."""
    train_array = _check_matrix(train, "train")
    test_array = _check_matrix(test, "test")
    if train_array.shape[1] != test_array.shape[1]:
        raise ValueError(
            f"train and test have different dimensions: train rows have {train_array.shape[1]} values, "
            f"test rows have {test_array.shape[1]}; embed both with the same model"
        )
    return train_array, l2_normalise(test_array, "test")


def check_chunk_rows(chunk_rows: int) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    return int(chunk_rows)


def _test_centroid(t: np.ndarray) -> np.ndarray:
    # Accumulated in float64 so the centroid does not depend on how the sum is ordered.
    return t.mean(axis=0, dtype=np.float64).astype(np.float32)  # (d,) float32, not unit norm


def _write_average_distance(x: np.ndarray, centroid: np.ndarray, out: np.ndarray) -> None:
    np.matmul(x, centroid, out=out)  # (chunk,) float32 cosines to the centroid
    np.negative(out, out=out)


def average_distance(train: np.ndarray, test: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """AD_i = mean over test points of -cos(x_i, t_j); (N,) float32, O(N·d), no N×M matrix."""
    chunk_rows = check_chunk_rows(chunk_rows)
    train, t = checked_pair(train, test)  # (N, d) raw, (M, d) float32 L2-normalised
    centroid = _test_centroid(t)  # (d,) float32
    ad = np.empty(train.shape[0], dtype=np.float32)  # (N,) float32
    for rows, x in normalised_chunks(train, chunk_rows):
        _write_average_distance(x, centroid, ad[rows])
    return ad


def min_distance(train: np.ndarray, test: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """MD_i = min over test points of -cos(x_i, t_j); (N,) float32, memory O(chunk_rows·M).

    The pass of `distances`; its AD (one matrix-vector product per chunk) costs little beside X·Tᵀ.
    """
    return distances(train, test, chunk_rows).md


def _check_score_vector(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(f"{name} row {int(np.flatnonzero(~finite)[0])} is NaN or infinite")
    return array


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def weighted_similarity_distance(
    md: np.ndarray, ad: np.ndarray, w_min: float = 1.0, w_avg: float | None = None
) -> Scores:
    """WSD = w_min·MD + w_avg·AD; `w_avg=None` means mean(MD) / mean(AD), as in Study B.

    Raises ValueError when the default ratio is degenerate (|mean(AD)| < 1e-6).
    """
    md = _check_score_vector(md, "md")
    ad = _check_score_vector(ad, "ad")
    if md.shape != ad.shape:
        raise ValueError(f"md and ad must have the same shape, got {md.shape} and {ad.shape}")
    if not math.isfinite(w_min):
        raise ValueError(f"w_min must be a finite number, got {w_min!r}")
    if w_avg is None:
        mean_md = float(md.mean(dtype=np.float64))
        mean_ad = float(ad.mean(dtype=np.float64))
        if abs(mean_ad) < _DEGENERATE_MEAN_AD:
            raise ValueError(
                f"the default w_avg = mean(MD) / mean(AD) is degenerate: mean(AD) = {mean_ad:.3g} is within "
                f"{_DEGENERATE_MEAN_AD:g} of zero (the test embeddings average to about the zero vector); "
                "set w_avg explicitly"
            )
        w_avg = mean_md / mean_ad
    elif not math.isfinite(w_avg):
        raise ValueError(f"w_avg must be a finite number or None, got {w_avg!r}")
    # O(N) work, so float64 costs nothing and keeps the weighted sum free of float32 rounding.
    wsd = (w_min * md.astype(np.float64) + w_avg * ad.astype(np.float64)).astype(np.float32)  # (N,)
    return Scores(
        ad=_read_only(ad.astype(np.float32)),
        md=_read_only(md.astype(np.float32)),
        wsd=_read_only(wsd),
        w_min=float(w_min),
        w_avg=float(w_avg),
    )


class ScoreAccumulator:
    """AD and MD gathered chunk by chunk from a pass over train that already has each chunk's cosines.

    A pass computing X_chunk @ T.T for another purpose (TMA's first candidate search) feeds it, so scores and
    TMA together read train once. `score` uses it with a pass of its own.
    """

    def __init__(self, n: int, t: np.ndarray):
        self._centroid = _test_centroid(t)  # (d,) float32
        self.ad = np.empty(n, dtype=np.float32)  # (N,) float32
        self.md = np.empty(n, dtype=np.float32)  # (N,) float32
        self._rows_seen = 0

    def add(self, rows: slice, x: np.ndarray, cosines: np.ndarray) -> None:
        """Record train[rows]: `x` (c, d) its unit rows, `cosines` (c, M) float32 = x @ T.T."""
        self.add_best(rows, x, np.max(cosines, axis=1))

    def add_best(self, rows: slice, x: np.ndarray, best_cosines: np.ndarray) -> None:
        """Record train[rows] from its unit rows `x` (c, d) and each row's largest cosine (c,) to the test set."""
        if rows.start != self._rows_seen:
            raise ValueError(f"chunks must arrive in order: expected row {self._rows_seen}, got {rows.start}")
        _write_average_distance(x, self._centroid, self.ad[rows])
        np.negative(best_cosines, out=self.md[rows])
        self._rows_seen = rows.stop

    def read(self, train: np.ndarray, t_transposed: np.ndarray, chunk_rows: int) -> None:
        """Fill every row by a pass of its own (train raw (N, d), t_transposed (d, M) of the unit test rows)."""
        if self._rows_seen:
            raise ValueError(f"read needs an empty accumulator; {self._rows_seen} rows were already added")
        with pass_progress("scores", train.shape[0]):
            for rows, x in normalised_chunks(train, chunk_rows):
                self.add(rows, x, x @ t_transposed)
                advance(rows.stop - rows.start)

    @property
    def complete(self) -> bool:
        return self._rows_seen == self.ad.shape[0]

    def scores(self, w_min: float = 1.0, w_avg: float | None = None) -> Scores:
        """WSD from the gathered AD and MD; every row must have been added."""
        if not self.complete:
            raise ValueError(f"scores needs every train row, got {self._rows_seen} of {self.ad.shape[0]}")
        return weighted_similarity_distance(self.md, self.ad, w_min=w_min, w_avg=w_avg)


def distances(train: np.ndarray, test: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> ScoreAccumulator:
    """AD and MD of every training row (a complete `ScoreAccumulator`), in one chunked pass over train."""
    chunk_rows = check_chunk_rows(chunk_rows)
    started = time.perf_counter()
    train, t = checked_pair(train, test)  # (N, d) raw, (M, d) float32 L2-normalised
    t_transposed = np.ascontiguousarray(t.T)  # (d, M) float32
    accumulator = ScoreAccumulator(train.shape[0], t)
    accumulator.read(train, t_transposed, chunk_rows)  # each chunk normalised once, used for both scores
    log_rate("scored", train.shape[0], t.shape[0], time.perf_counter() - started)
    return accumulator


def score(
    train: np.ndarray,
    test: np.ndarray,
    w_min: float = 1.0,
    w_avg: float | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Scores:
    """AD, MD and WSD of every training row against the test set, in one chunked pass over train."""
    return distances(train, test, chunk_rows).scores(w_min=w_min, w_avg=w_avg)


def log_rate(what: str, n: int, m: int, elapsed_s: float) -> None:
    """The stage's efficiency figure: train rows per second of a pass against m test rows."""
    log.info(
        "%s %d train rows against %d test rows in %.2f s (%.0f rows/s)", what, n, m, elapsed_s, n / max(elapsed_s, 1e-9)
    )
