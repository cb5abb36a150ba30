"""The arrangement stage: embed the training pool and test set once, then one ordered artifact per
(volume, ordering, seed) of the grid. `dynamics arrange <config>` runs this stage alone.

Scores (AD, MD) are per item and computed once for the whole pool, in id order, so they never depend on
the pool's row order. When the grid holds a TMA arrangement of the whole pool, that arrangement runs first
and its first candidate pass yields the pool's scores too: WSD + TMA then read the pool once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dynamics.arrange.arrangers import ArrangeInputs, Subset, get_arranger, get_scored_arranger
from dynamics.arrange.artifact import ArrangementRef, order_table, read_cached, write_arrangement
from dynamics.arrange.embed import cached_embeddings, example_texts
from dynamics.arrange.faiss_search import faiss_distances
from dynamics.arrange.progress import progress_bar
from dynamics.arrange.similarity import Scores, distances, weighted_similarity_distance
from dynamics.config import ArrangeConfig, SweepConfig
from dynamics.data.volume import sample_volume

log = logging.getLogger(__name__)
ArrangementKey = tuple[int, str, int]  # (volume, ordering, seed)


def table_hash(table: pa.Table) -> str:
    """Content hash of a table (Arrow IPC bytes are deterministic for the same schema and values)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]


def round_stats(rounds: np.ndarray | None) -> dict[str, int]:
    """TMA round statistics for the artifact and MLflow: how many rounds, and their smallest and largest sizes."""
    if rounds is None or rounds.size == 0:
        return {}
    sizes = np.bincount(rounds)
    sizes = sizes[sizes > 0]
    return {
        "tma_rounds": int(sizes.size),
        "tma_round_size_min": int(sizes.min()),
        "tma_round_size_max": int(sizes.max()),
    }


class _PoolDistances:
    """AD and MD of every pool item (pool in id order), computed at most once: by a pass, or learnt from TMA."""

    def __init__(self, train: np.ndarray, test: np.ndarray, settings: ArrangeConfig):
        self.train, self.test, self.settings = train, test, settings
        self.ad: np.ndarray | None = None  # (N,) float32
        self.md: np.ndarray | None = None  # (N,) float32

    def learn(self, whole_pool: Scores) -> None:
        """Take AD and MD from scores a whole-pool TMA arrangement computed (same pool order, same chunks)."""
        self.ad, self.md = whole_pool.ad, whole_pool.md

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        if self.ad is None or self.md is None:
            search = faiss_distances if self.settings.md_search == "faiss" else distances
            found = search(self.train, self.test)
            self.ad, self.md = found.ad, found.md
        return self.ad, self.md


def _whole_pool_tma_first(
    keys: list[ArrangementKey], pool_rows: int, settings: ArrangeConfig
) -> tuple[list[ArrangementKey], bool]:
    """(`keys` with a whole-pool TMA arrangement first, whether there is one); only when MD is exact products."""
    if settings.md_search == "exact":
        for position, (volume, ordering, _) in enumerate(keys):
            if volume == pool_rows and get_scored_arranger(ordering) is not None:
                return [keys[position], *keys[:position], *keys[position + 1 :]], True
    return keys, False


def arrange_grid(
    train_pool: pa.Table, test: pa.Table, config: SweepConfig, workdir: Path
) -> dict[ArrangementKey, ArrangementRef]:
    """Every arrangement the grid needs, computed (or read from cache) on the driver."""
    for name in config.grid.permutation:
        get_arranger(name)  # fail on an unknown name before any embedding work
    settings = config.arrange
    pool_hash, test_hash = table_hash(train_pool), table_hash(test)
    root = workdir / "arrangements"
    wanted = [(v, p, s) for s in config.grid.seed for v in config.grid.volume for p in config.grid.permutation]

    def describe(volume: int, ordering: str, seed: int) -> dict:
        return {
            "train_pool": pool_hash,
            "test": test_hash,
            "arrange": settings.model_dump(
                exclude={"batch_size", "num_actors", "cpus_per_actor", "gpus_per_actor", "device"}
            ),
            "volume": volume,
            "ordering": ordering,
            "seed": seed,
        }

    refs = {key: read_cached(describe(*key), root) for key in wanted}
    missing = [key for key, ref in refs.items() if ref is None]
    if not missing:
        return refs  # type: ignore[return-value]

    started = time.perf_counter()
    train_pool = train_pool.take(pc.sort_indices(train_pool, sort_keys=[("id", "ascending")]))
    cache = workdir / "cache" / "embeddings"
    # One Ray Data pass for both sets: the actor pool's start-up (~10 s on 2 CPUs) is paid once.
    vectors, _ = cached_embeddings(
        example_texts(train_pool, settings.text_fields) + example_texts(test, settings.text_fields), settings, cache
    )
    train_vectors, test_vectors = vectors[: train_pool.num_rows], vectors[train_pool.num_rows :]
    row_of_id = {item_id: row for row, item_id in enumerate(train_pool.column("id").to_pylist())}
    pool = _PoolDistances(train_vectors, test_vectors, settings)
    ordered, fuse_first = _whole_pool_tma_first(missing, train_pool.num_rows, settings)
    for position, (volume, ordering, seed) in enumerate(progress_bar(ordered, "arrangements", "order")):
        subset = sample_volume(train_pool, volume, seed)  # id order
        ids, tasks = subset.column("id").to_pylist(), subset.column("task").to_pylist()
        rows = np.array([row_of_id[i] for i in ids], dtype=np.int64)
        # The whole pool is the id-ordered pool itself: no 1.5 GB copy at a million rows.
        train_rows = train_vectors if rows.size == train_pool.num_rows else train_vectors[rows]
        items = Subset(ids, tasks, train_rows, test_vectors, seed, settings)
        scored = get_scored_arranger(ordering)
        if position == 0 and fuse_first and scored is not None:
            scores, arranged = scored(items)
            pool.learn(scores)
        else:
            ad, md = pool.get()
            scores = weighted_similarity_distance(md[rows], ad[rows], w_min=settings.w_min, w_avg=settings.w_avg)
            inputs = ArrangeInputs(ids, tasks, train_rows, test_vectors, seed, settings, scores=scores)
            arranged = get_arranger(ordering)(inputs)
        table = order_table(ids, tasks, scores.ad, scores.md, scores.wsd, arranged.permutation, arranged.rounds)
        derived = {"w_min": float(scores.w_min), "w_avg": float(scores.w_avg), **round_stats(arranged.rounds)}
        refs[(volume, ordering, seed)] = write_arrangement(table, describe(volume, ordering, seed), root, derived)
    log.info("arranged %d orders in %.1f s", len(missing), time.perf_counter() - started)
    return refs  # type: ignore[return-value]
