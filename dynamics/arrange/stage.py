"""The arrangement stage: embed the training pool and test set once, then one ordered artifact per
(volume, permutation, seed) asked for. `dynamics arrange <config>` runs this stage alone.

Scores (AD, MD) are per item and computed once for the whole pool, in id order, so they never depend on
the pool's row order. When the grid holds a TMA arrangement of the whole pool, that arrangement runs first
and its first candidate pass yields the pool's scores too: WSD + TMA then read the pool once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dynamics.arrange.artifact import ArrangementKey, ArrangementRef, order_table, read_cached, write_arrangement
from dynamics.arrange.embed import cached_embeddings, example_texts
from dynamics.arrange.faiss_search import faiss_distances
from dynamics.arrange.orders import OrderInputs, ScoredInputs, permutation
from dynamics.arrange.progress import progress_bar
from dynamics.arrange.similarity import Scores, distances, weighted_similarity_distance
from dynamics.config import ArrangeConfig, named_recipe
from dynamics.data.recipes import apply_recipe
from dynamics.data.volume import sample_volume
from dynamics.io import table_digest

log = logging.getLogger(__name__)


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
        for position, key in enumerate(keys):
            whole_pool = key.volume == pool_rows and key.recipe is None  # a recipe may pick fewer than its N
            if whole_pool and permutation(key.permutation).scores_itself:
                return [keys[position], *keys[:position], *keys[position + 1 :]], True
    return keys, False


def training_subset(train_pool: pa.Table, key: ArrangementKey) -> pa.Table:
    """The items an arrangement orders, in id order: the key's recipe applied to the pool (a seeded prefix per
    category and of the synthetic pool), or the nested volume subset."""
    if key.recipe_name is None:
        return sample_volume(train_pool, key.volume, key.seed)
    chosen = apply_recipe(train_pool, named_recipe(key.recipe_name), key.seed)
    return chosen.take(pc.sort_indices(chosen, sort_keys=[("id", "ascending")]))


def build_arrangements(
    train_pool: pa.Table,
    test: pa.Table,
    settings: ArrangeConfig,
    wanted: Sequence[ArrangementKey],
    workdir: Path,
) -> dict[ArrangementKey, ArrangementRef]:
    """Every arrangement in `wanted`, computed (or read from cache under `workdir`) on the driver."""
    for key in wanted:
        permutation(key.permutation)  # fail on an unknown name before any embedding work
    pool_hash, test_hash = table_digest(train_pool), table_digest(test)
    root = workdir / "arrangements"

    def describe(key: ArrangementKey) -> dict:
        return {
            "train_pool": pool_hash,
            "test": test_hash,
            "arrange": settings.model_dump(
                exclude={"batch_size", "num_actors", "cpus_per_actor", "gpus_per_actor", "device"}
            ),
            "volume": key.volume,
            "ordering": key.permutation,  # the artifact's own key since version 1: renaming it changes every hash
            "seed": key.seed,
        } | ({} if key.recipe is None else {"recipe": key.recipe_name})  # absent without one: older keys hold

    refs = {key: read_cached(describe(key), root) for key in wanted}
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
    for position, key in enumerate(progress_bar(ordered, "arrangements", "order")):
        subset = training_subset(train_pool, key)  # id order
        ids, tasks = subset.column("id").to_pylist(), subset.column("task").to_pylist()
        rows = np.array([row_of_id[i] for i in ids], dtype=np.int64)
        # The whole pool is the id-ordered pool itself: no 1.5 GB copy at a million rows.
        train_rows = train_vectors if rows.size == train_pool.num_rows else train_vectors[rows]
        named = permutation(key.permutation)
        if position == 0 and fuse_first:
            scores, ordered_items = named.arrange_and_score(
                OrderInputs(ids, tasks, train_rows, test_vectors, key.seed, settings)
            )
            pool.learn(scores)
        else:
            ad, md = pool.get()
            scores = weighted_similarity_distance(md[rows], ad[rows], w_min=settings.w_min, w_avg=settings.w_avg)
            ordered_items = named.arrange(
                ScoredInputs(ids, tasks, train_rows, test_vectors, key.seed, settings, scores=scores)
            )
        table = order_table(ids, tasks, scores.ad, scores.md, scores.wsd, ordered_items.positions, ordered_items.rounds)
        derived = {"w_min": float(scores.w_min), "w_avg": float(scores.w_avg), **round_stats(ordered_items.rounds)}
        refs[key] = write_arrangement(table, describe(key), root, derived)
    log.info("arranged %d orders in %.1f s", len(missing), time.perf_counter() - started)
    return refs  # type: ignore[return-value]
