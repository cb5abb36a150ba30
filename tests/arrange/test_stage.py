"""The arrangement stage without Ray: embeddings come from a fake keyed by text, everything else is real."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dynamics.arrange import stage
from dynamics.arrange.artifact import ArrangementKey
from dynamics.config import load_config
from dynamics.data.schema import split_of
from dynamics.data.sources import load_examples

OFFLINE = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "offline.yaml"


def fake_embeddings(texts: list[str], settings, cache_dir: Path) -> tuple[np.ndarray, str]:
    """Stands in for the Ray Data embedder: a vector per text, seeded by the text, so row order is irrelevant."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        rows.append(np.random.default_rng(seed).standard_normal(16).astype(np.float32) + 0.5)
    return np.stack(rows), "fake"


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage, "cached_embeddings", fake_embeddings)


def _arrange(workdir: Path, permutations: list[str], **arrange: object) -> tuple[dict, int]:
    overrides = {
        "workdir": str(workdir),
        "data.options.per_train_task": 6,
        "data.options.per_test_task": 2,
        "grid.permutation": permutations,
        **{f"arrange.{key}": value for key, value in arrange.items()},
    }
    config = load_config(OFFLINE, overrides)
    table = load_examples(config.data, seed=0)
    train, test = split_of(table, "train"), split_of(table, "test")
    pool = train.num_rows
    wanted = [ArrangementKey(volume, name, 0) for volume in (pool, 60) for name in permutations]
    return stage.build_arrangements(train, test, config.arrange, wanted, workdir), pool


def _order(refs: dict, key: tuple) -> dict:
    return pq.read_table(refs[key].order_path).to_pydict()


def test_whole_pool_tma_yields_the_same_scores_as_a_scoring_pass(tmp_path: Path, monkeypatch) -> None:
    scoring_passes = []
    real_distances = stage.distances
    monkeypatch.setattr(stage, "distances", lambda *a, **k: scoring_passes.append(1) or real_distances(*a, **k))
    fused, pool = _arrange(tmp_path / "fused", ["nft", "tma_min", "fft"])
    assert scoring_passes == [], "the whole-pool TMA arrangement supplied the pool's scores"
    alone, _ = _arrange(tmp_path / "alone", ["nft", "fft"])
    assert scoring_passes == [1]
    for volume in (pool, 60):
        for ordering in ("nft", "fft"):
            key = ArrangementKey(volume, ordering, 0)
            assert Path(fused[key].order_path).read_bytes() == Path(alone[key].order_path).read_bytes(), key
    tma_rows = _order(fused, ArrangementKey(pool, "tma_min", 0))
    nft_rows = _order(fused, ArrangementKey(pool, "nft", 0))
    md_of = dict(zip(nft_rows["id"], nft_rows["md"], strict=True))
    assert sorted(tma_rows["id"]) == sorted(nft_rows["id"])
    assert all(md_of[item] == md for item, md in zip(tma_rows["id"], tma_rows["md"], strict=True))


def test_tma_artifact_records_round_statistics(tmp_path: Path) -> None:
    refs, pool = _arrange(tmp_path, ["tma_min_max"])
    rows = _order(refs, ArrangementKey(pool, "tma_min_max", 0))
    derived = json.loads((Path(refs[ArrangementKey(pool, "tma_min_max", 0)].folder) / "arrangement.json").read_text())[
        "derived"
    ]
    sizes = np.bincount(np.asarray(rows["round"]))
    assert derived["tma_rounds"] == np.count_nonzero(sizes) == len(set(rows["round"]))
    assert derived["tma_round_size_max"] == sizes.max()
    assert derived["tma_round_size_min"] == sizes[sizes > 0].min()


def test_tma_rounds_setting_keeps_those_rounds_and_a_suffix_wins(tmp_path: Path) -> None:
    refs, pool = _arrange(tmp_path, ["tma_min", "tma_min[1:3]"], tma_rounds=[0, 2])
    assert set(_order(refs, ArrangementKey(pool, "tma_min", 0))["round"]) == {0, 1}
    assert set(_order(refs, ArrangementKey(pool, "tma_min[1:3]", 0))["round"]) == {1, 2}


def test_faiss_md_search_agrees_with_exact_products(tmp_path: Path) -> None:
    exact, pool = _arrange(tmp_path / "exact", ["nft", "tma_max"])
    faiss, _ = _arrange(tmp_path / "faiss", ["nft", "tma_max"], md_search="faiss")
    for volume in (pool, 60):
        by_exact, by_faiss = (
            _order(exact, ArrangementKey(volume, "nft", 0)),
            _order(faiss, ArrangementKey(volume, "nft", 0)),
        )
        md_exact = dict(zip(by_exact["id"], by_exact["md"], strict=True))
        assert sorted(by_exact["id"]) == sorted(by_faiss["id"])
        assert max(abs(md_exact[i] - md) for i, md in zip(by_faiss["id"], by_faiss["md"], strict=True)) < 1e-6
        # TMA never uses MD, so its order is the same whichever way MD was computed.
        assert (
            _order(exact, ArrangementKey(volume, "tma_max", 0))["id"]
            == _order(faiss, ArrangementKey(volume, "tma_max", 0))["id"]
        )


def test_a_damaged_arrangement_is_rebuilt_by_the_stage_and_the_rest_are_hits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = _arrange(tmp_path, ["nft", "fft"])
    damaged_key = ArrangementKey(60, "fft", 0)
    order = Path(first[damaged_key].order_path)
    written = {key: Path(ref.order_path).read_bytes() for key, ref in first.items()}
    order.write_bytes(order.read_bytes()[:-20])
    with caplog.at_level(logging.WARNING, logger="dynamics.io"):
        again, _ = _arrange(tmp_path, ["nft", "fft"])
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert first[damaged_key].folder in warning
    assert again == first
    assert {key: Path(ref.order_path).read_bytes() for key, ref in again.items()} == written
    assert [p.name.split(".")[0] for p in (tmp_path / "arrangements" / "damaged").iterdir()] == [
        Path(first[damaged_key].folder).name
    ]
