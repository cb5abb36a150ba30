"""Nested, stratified data-volume subsets (SPEC §1.3 "do better").

Each category gets a seeded permutation of its ids (sorted first, so file order does not matter); the subset
of size N is the first N items of a round-robin over categories. Hence subsets are balanced across
categories and nested: volume 160 ⊂ volume 640 for the same seed.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from dynamics.data.sampling import seeded_rows


def volume_order(table: pa.Table, seed: int) -> list[int]:
    """Row indices of `table` in the order volumes take them (round-robin over sorted categories)."""
    ids = table.column("id").to_pylist()
    rows_by_category: dict[str, list[int]] = {}
    for row, category in enumerate(table.column("category").to_pylist()):
        rows_by_category.setdefault(category, []).append(row)
    queues = [seeded_rows(rows_by_category[category], ids, seed, category) for category in sorted(rows_by_category)]
    order: list[int] = []
    depth = 0
    while len(order) < len(ids):
        order.extend(queue[depth] for queue in queues if depth < len(queue))
        depth += 1
    return order


def sample_volume(table: pa.Table, volume: int, seed: int, origin: str = "train split") -> pa.Table:
    """The first `volume` rows of `volume_order`, returned in id order (arrangement decides the order)."""
    if volume > table.num_rows:
        raise ValueError(f"{origin}: volume {volume} exceeds the {table.num_rows} available training examples")
    chosen = volume_order(table, seed)[:volume]
    subset = table.take(pa.array(chosen, type=pa.int64()))
    return subset.take(pc.sort_indices(subset, sort_keys=[("id", "ascending")]))
