"""The embeddings cache (`cached_embeddings`) on real files; the Ray Data embedder is replaced by a fake keyed by
text, so a recomputation is visible and gives the same float bits."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from dynamics.arrange import embed
from dynamics.config import ArrangeConfig
from dynamics.io import sidecar_path

TEXTS = [f"text number {k}" for k in range(40)]


class FakeEmbedder:
    """Stands in for `embed_texts`: a vector per text, seeded by the text; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: list[str], config: ArrangeConfig) -> np.ndarray:
        self.calls += 1
        seeds = [int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") for text in texts]
        return np.stack([np.random.default_rng(seed).standard_normal(24).astype(np.float32) for seed in seeds])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
    embedder = FakeEmbedder()
    monkeypatch.setattr(embed, "embed_texts", embedder)
    return embedder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-4])


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x80  # a sign bit of the last vector: the file still loads, with a wrong number
    path.write_bytes(bytes(data))


def _drop_sidecar(path: Path) -> None:
    sidecar_path(path).unlink()


DAMAGES = {
    "truncated": (_truncate, "truncated"),
    "one byte changed": (_flip_one_byte, "bytes changed in place"),
    "sidecar deleted": (_drop_sidecar, "no sidecar"),
}


def test_a_second_request_reads_the_verified_entry(tmp_path: Path, fake: FakeEmbedder) -> None:
    vectors, key = embed.cached_embeddings(TEXTS, ArrangeConfig(), tmp_path)
    again, same_key = embed.cached_embeddings(TEXTS, ArrangeConfig(), tmp_path)
    assert fake.calls == 1 and key == same_key and again.dtype == np.float32
    assert np.array_equal(vectors, again)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.npy", f"{key}.npy.sha256.json"]


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_entry_is_moved_aside_and_recomputed_byte_identical(
    tmp_path: Path, fake: FakeEmbedder, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    spoil, expected = DAMAGES[damage]
    vectors, key = embed.cached_embeddings(TEXTS, ArrangeConfig(), tmp_path)
    path = tmp_path / f"{key}.npy"
    written = path.read_bytes()
    spoil(path)

    with caplog.at_level(logging.WARNING, logger="dynamics.io"):
        again, _ = embed.cached_embeddings(TEXTS, ArrangeConfig(), tmp_path)
    assert fake.calls == 2 and np.array_equal(again, vectors)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning and expected in warning
    (moved,) = (tmp_path / "damaged").iterdir()
    assert moved.name.startswith(f"{key}.npy.") and str(moved) in warning
    assert path.read_bytes() == written
    embed.cached_embeddings(TEXTS, ArrangeConfig(), tmp_path)
    assert fake.calls == 2
