"""The arrangement artifact: ordered ids with their scores, the config that made them and a content hash.

Written as `order.parquet` (position, id, task, ad, md, wsd, round) + `arrangement.json` in a folder named
by the cache key, so any trial can be traced to its exact order and a repeated request is a cache hit. A hit
is verified: the content hash in `arrangement.json` is recomputed from the order bytes, so a damaged folder
is moved aside whole (to `damaged/`, with a warning) and rebuilt, never trained on nor logged to MLflow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from dynamics.config import TrialFactors, grid_recipe_name
from dynamics.io import Damage, atomic_write_bytes, atomic_write_text, cache_key, move_aside, parquet_bytes

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
    """Which arrangement: a data volume, a `grid.permutation` name, a seed and the grid recipe (Study A) that
    chooses the volume's items, if any."""

    volume: int
    permutation: str
    seed: int
    recipe: str | None = None

    @property
    def recipe_name(self) -> str | None:
        """The recipe preset that picks the items (`curated-640`), or None: a nested subset of the pool."""
        return None if self.recipe is None else grid_recipe_name(self.recipe, self.volume)


def arrangement_key_of(factors: TrialFactors) -> ArrangementKey:
    """The arrangement a trial trains on (models share it)."""
    return ArrangementKey(factors.volume, factors.permutation, factors.seed, factors.recipe)


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
    content_hash = _content_hash(order_bytes, meta)
    meta["content_hash"] = content_hash
    # arrangement.json marks a complete entry (`read_cached` looks for it), so it is published last.
    atomic_write_bytes(folder / "order.parquet", order_bytes)
    atomic_write_text(folder / "arrangement.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return ArrangementRef(str(folder), content_hash, table.num_rows)


def _content_hash(order_bytes: bytes, meta: dict[str, Any]) -> str:
    """sha256 over the order bytes and the meta (config, derived, size), as `write_arrangement` records it."""
    return hashlib.sha256(order_bytes + json.dumps(meta, sort_keys=True).encode()).hexdigest()


def _verified_meta(folder: Path, description: dict[str, Any]) -> dict[str, Any]:
    """`arrangement.json` of the complete artifact in `folder`, once its content hash matches the order bytes
    (recomputed as `write_arrangement` does); ValueError naming what is wrong."""
    try:
        meta = json.loads((folder / "arrangement.json").read_text(encoding="utf-8"))
        recorded = {"config": meta["config"], "derived": meta["derived"], "size": meta["size"]}
        content_hash = str(meta["content_hash"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"arrangement.json is unreadable or incomplete ({type(error).__name__}: {error})") from None
    if json.dumps(recorded["config"], sort_keys=True) != json.dumps(description, sort_keys=True):
        raise ValueError("arrangement.json describes another arrangement than the one its folder is named for")
    try:
        order_bytes = (folder / "order.parquet").read_bytes()
    except OSError as error:
        raise ValueError(f"order.parquet is unreadable ({error})") from None
    found = _content_hash(order_bytes, recorded)
    if found != content_hash:
        raise ValueError(
            f"order.parquet ({len(order_bytes)} bytes) with arrangement.json hashes to {found[:16]}…, "
            f"not the {content_hash[:16]}… recorded (truncated or changed since it was written)"
        )
    return meta


def verify_arrangement(folder: Path, description: dict[str, Any]) -> Damage | None:
    """None when the artifact in `folder` is intact and is the one for `description`; else what is wrong."""
    try:
        _verified_meta(folder, description)
    except ValueError as error:
        return Damage(folder, str(error))
    return None


def read_cached(description: dict[str, Any], root: Path) -> ArrangementRef | None:
    """The artifact for `description` if it was written before and is intact (a cache hit), else None.

    Only verified folders come back, so nothing damaged is trained on or logged to MLflow: a folder whose
    order bytes no longer match the content hash in its `arrangement.json`, or whose `arrangement.json` is
    unreadable, is moved aside whole to `root/damaged/` with a warning, and is a miss. A folder without
    `arrangement.json` is a write that never finished: a plain miss, rewritten in place.
    """
    folder = root / arrangement_key(description)
    if not (folder / "arrangement.json").exists():
        return None
    try:
        meta = _verified_meta(folder, description)
    except ValueError as error:
        move_aside(folder, str(error))
        return None
    return ArrangementRef(str(folder), meta["content_hash"], meta["size"])


def read_derived(ref: ArrangementRef) -> dict[str, Any]:
    """Values computed while arranging (WSD weights, TMA round statistics), for run params."""
    return json.loads((Path(ref.folder) / "arrangement.json").read_text())["derived"]
