"""MD by faiss flat inner-product search (`arrange.md_search: faiss`), the alternative to numpy products.

A flat index over the M unit test vectors answers each chunk of unit training rows with its best inner
product, so memory stays O(chunk·M) as in `similarity`. On a machine with faiss GPUs the index moves to
them; on CPU it uses the same BLAS products as the numpy path (the same speed here), and its values may
differ from them in the last float32 bit.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from dynamics.arrange.progress import advance, pass_progress
from dynamics.arrange.similarity import (
    DEFAULT_CHUNK_ROWS,
    ScoreAccumulator,
    check_chunk_rows,
    checked_pair,
    log_rate,
    normalised_chunks,
)

log = logging.getLogger(__name__)


def _flat_index(t: np.ndarray):  # -> faiss.Index
    import faiss

    index = faiss.IndexFlatIP(t.shape[1])
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(t)
    return index


def faiss_distances(train: np.ndarray, test: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> ScoreAccumulator:
    """AD and MD of every training row (a complete `ScoreAccumulator`), MD from a faiss flat search."""
    chunk_rows = check_chunk_rows(chunk_rows)
    started = time.perf_counter()
    train, t = checked_pair(train, test)  # (N, d) raw, (M, d) float32 L2-normalised
    index = _flat_index(t)
    accumulator = ScoreAccumulator(train.shape[0], t)
    with pass_progress("scores (faiss)", train.shape[0]):
        for rows, x in normalised_chunks(train, chunk_rows):
            best, _ = index.search(x, 1)  # (c, 1) float32, the largest cosine of each row
            accumulator.add_best(rows, x, best[:, 0])
            advance(rows.stop - rows.start)
    log_rate("scored (faiss)", train.shape[0], t.shape[0], time.perf_counter() - started)
    return accumulator
