"""DoIT-like canonical tables for the sampling and recipe tests: ten categories (DoIT's abilities), a synthetic
pool, and test/valid rows. Imported as `doit_pools` (pytest's "prepend" mode puts this folder on the path).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dynamics.data.schema import split_of, to_table

CATEGORIES = (
    "biology", "chinese", "code", "creative_writing", "ethics",
    "history", "math", "reasoning", "role_play", "understanding",
)  # fmt: skip
# Every category can give 1000 (baseline) and the uncapped ones 1268 (reconstruct).
POOL_SIZES = {category: 1300 + 17 * index for index, category in enumerate(CATEGORIES)}
POOL_SIZES.update(ethics=1100, role_play=1050, creative_writing=1200)
SYNTHETIC_SIZE = 700


def row(row_id: str, group: str, split: str) -> dict[str, Any]:
    return {
        "id": row_id,
        "source": "doit",
        "task": group,
        "category": group,
        "split": split,
        "messages": [{"role": "user", "content": f"q {row_id}"}, {"role": "assistant", "content": f"a {row_id}"}],
        "references": [f"a {row_id}"],
    }


def table_of(train: Mapping[str, int], synthetic: int = 0, test: int = 3, valid: int = 2) -> pa.Table:
    """Curated train pools, a synthetic pool, and test/valid rows for the first categories (test tasks differ
    from train tasks, as the loader's leak check requires)."""
    rows = [row(f"doit/curated/full/{a}/{i:06d}", a, "train") for a, n in train.items() for i in range(1, n + 1)]
    rows += [row(f"doit/synthetic/40960/synthetic/{i:06d}", "synthetic", "train") for i in range(1, synthetic + 1)]
    for category in list(train)[:2]:
        rows += [row(f"doit/curated/test/{category}/{i:06d}", f"{category}-test", "test") for i in range(test)]
        rows += [row(f"doit/curated/valid/{category}/{i:06d}", category, "valid") for i in range(valid)]
    return to_table(rows, origin="fixture")


def shuffled_rows(table: pa.Table, seed: int) -> pa.Table:
    return table.take(pa.array(np.random.default_rng(seed).permutation(table.num_rows), type=pa.int64()))


def train_ids_of(table: pa.Table) -> set[str]:
    return set(split_of(table, "train").column("id").to_pylist())


def category_counts(table: pa.Table) -> Counter[str]:
    return Counter(split_of(table, "train").column("category").to_pylist())


def parquet_of(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def even_shares(total: int, categories: list[str]) -> dict[str, int]:
    base, extra = divmod(total, len(categories))
    return {a: base + (i < extra) for i, a in enumerate(sorted(categories))}
