"""The arrangement artifact: ordered ids with their scores, the config that made them and a content hash.

Written as `order.parquet` (position, id, task, ad, md, wsd, round) + `arrangement.json` in a folder named
by the cache key, so any trial can be traced to its exact order and a repeated request is a cache hit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from dynamics.io import atomic_write_bytes, atomic_write_text, cache_key, parquet_bytes

ORDER_SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("id", pa.string()),
        ("task", pa.string()),
        ("ad", pa.float32()),
        ("md", pa.float32()),
        ("wsd", pa.float32()),
        ("round", pa.int32()),  # TMA round id; null for orders without rounds
    ]
)


ARTIFACT_VERSION = 1  # bump when the same inputs would give other order bytes


class ArrangementKey(NamedTuple):
    """Which arrangement: a data volume, a `grid.permutation` name and a seed."""

    volume: int
    permutation: str
    seed: int


@dataclass(frozen=True)
class ArrangementRef:
    """Where an arrangement lives and what identifies its content."""

    folder: str
    content_hash: str
    size: int

    @property
    def order_path(self) -> str:
        return str(Path(self.folder) / "order.parquet")


def arrangement_key(description: dict[str, Any]) -> str:
    """Cache key over everything that determines an arrangement (input hashes, settings, volume, order, seed)."""
    return cache_key("arrangement", ARTIFACT_VERSION, description)


def order_table(
    ids: list[str],
    tasks: list[str],
    ad: np.ndarray,
    md: np.ndarray,
    wsd: np.ndarray,
    permutation: np.ndarray,
    rounds: np.ndarray | None = None,
) -> pa.Table:
    """Rows in training order: row k is the item trained on k-th (K ≤ N rows; TMA may select a subset)."""
    take = np.asarray(permutation, dtype=np.int64)
    return pa.table(
        {
            "position": np.arange(len(take), dtype=np.int64),
            "id": [ids[i] for i in take],
            "task": [tasks[i] for i in take],
            "ad": ad[take].astype(np.float32),
            "md": md[take].astype(np.float32),
            "wsd": wsd[take].astype(np.float32),
            "round": pa.nulls(len(take), pa.int32()) if rounds is None else pa.array(rounds, pa.int32()),
        },
        schema=ORDER_SCHEMA,
    )


def write_arrangement(
    table: pa.Table, description: dict[str, Any], root: Path, derived: dict[str, Any] | None = None
) -> ArrangementRef:
    """Write the artifact under `root/<cache key>`.

    `description` is what determines the order (and names the folder); `derived` holds values computed on
    the way (e.g. the WSD weight actually used). The content hash covers the order bytes and both.
    """
    folder = root / arrangement_key(description)
    order_bytes = parquet_bytes(table)
    meta = {"config": description, "derived": derived or {}, "size": table.num_rows}
    content_hash = hashlib.sha256(order_bytes + json.dumps(meta, sort_keys=True).encode()).hexdigest()
    meta["content_hash"] = content_hash
    # arrangement.json marks a complete entry (`read_cached` looks for it), so it is published last.
    atomic_write_bytes(folder / "order.parquet", order_bytes)
    atomic_write_text(folder / "arrangement.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return ArrangementRef(str(folder), content_hash, table.num_rows)


def read_cached(description: dict[str, Any], root: Path) -> ArrangementRef | None:
    """The artifact for `description` if it was written before (a cache hit), else None."""
    meta_path = root / arrangement_key(description) / "arrangement.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    return ArrangementRef(str(meta_path.parent), meta["content_hash"], meta["size"])


def read_derived(ref: ArrangementRef) -> dict[str, Any]:
    """Values computed while arranging (WSD weights, TMA round statistics), for run params."""
    return json.loads((Path(ref.folder) / "arrangement.json").read_text())["derived"]
