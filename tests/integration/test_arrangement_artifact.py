"""Arrangement artifacts: Ray Data embeddings → WSD → orders; byte-identical for the same config and seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from dynamics.arrange.artifact import ArrangementKey
from dynamics.arrange.stage import build_arrangements
from dynamics.config import load_config
from dynamics.data.schema import split_of
from dynamics.data.sources import load_examples
from dynamics.sweep.plan import arrangements_needed

OFFLINE = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "offline.yaml"


def _config(workdir: Path):
    return load_config(
        OFFLINE,
        {
            "workdir": str(workdir),
            "data.options.per_train_task": 4,
            "data.options.per_test_task": 2,
            "grid.volume": [40, 80],
            "grid.permutation": ["nft", "fft", "rt"],
            "grid.seed": [0],
        },
    )


def _arrange(workdir: Path):
    config = _config(workdir)
    table = load_examples(config.data, seed=0)
    wanted = arrangements_needed(config.grid.points())
    return build_arrangements(split_of(table, "train"), split_of(table, "test"), config.arrange, wanted, workdir)


def test_same_config_and_seed_give_byte_identical_artifacts(ray_cluster, tmp_path):
    first, second = _arrange(tmp_path / "a"), _arrange(tmp_path / "b")  # separate workdirs: no shared cache
    assert first.keys() == second.keys() and len(first) == 6
    for key in first:
        assert Path(first[key].order_path).read_bytes() == Path(second[key].order_path).read_bytes()
        assert first[key].content_hash == second[key].content_hash
        assert (Path(first[key].folder) / "arrangement.json").read_bytes() == (
            Path(second[key].folder) / "arrangement.json"
        ).read_bytes()


def test_orders_follow_wsd_and_nest_by_volume(ray_cluster, tmp_path):
    refs = _arrange(tmp_path)
    nft = pq.read_table(refs[ArrangementKey(80, "nft", 0)].order_path).to_pydict()
    fft = pq.read_table(refs[ArrangementKey(80, "fft", 0)].order_path).to_pydict()
    rt = pq.read_table(refs[ArrangementKey(80, "rt", 0)].order_path).to_pydict()
    assert nft["position"] == list(range(80))
    assert np.all(np.diff(np.asarray(nft["wsd"])) >= 0), "NFT is ascending WSD"
    assert fft["id"] == nft["id"][::-1], "FFT is the exact reverse of NFT"
    assert sorted(rt["id"]) == sorted(nft["id"]) and rt["id"] != nft["id"]
    small = set(pq.read_table(refs[ArrangementKey(40, "nft", 0)].order_path).column("id").to_pylist())
    assert small < set(nft["id"]), "volume 40 is a subset of volume 80"
    meta = json.loads((Path(refs[ArrangementKey(80, "nft", 0)].folder) / "arrangement.json").read_text())
    assert meta["config"]["ordering"] == "nft" and meta["config"]["volume"] == 80
    assert meta["derived"]["w_avg"] > 0


def test_second_request_is_a_cache_hit(ray_cluster, tmp_path, monkeypatch):
    first = _arrange(tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("embedding recomputed despite a cached arrangement")

    monkeypatch.setattr("dynamics.arrange.stage.cached_embeddings", fail)
    assert _arrange(tmp_path) == first


def test_embeddings_are_bit_identical_with_one_or_two_actors(ray_cluster):
    from dynamics.arrange.embed import embed_texts
    from dynamics.config import ArrangeConfig

    texts = [f"Sentence number {i} about {['cats', 'maths', 'rivers', 'code'][i % 4]}." for i in range(300)]
    one = embed_texts(texts, ArrangeConfig(num_actors=1, batch_size=32))
    two = embed_texts(texts, ArrangeConfig(num_actors=2, batch_size=32))
    assert one.shape == (300, 384) and one.dtype == np.float32
    assert one.tobytes() == two.tobytes()


def test_arrange_command_runs_the_stage_alone_with_progress(ray_cluster, tmp_path, capsys):
    from dynamics.cli import main

    sets = [
        "data.options.per_train_task=4",
        "data.options.per_test_task=2",
        "grid.volume=[all]",
        "grid.permutation=[tma_min_max,nft]",
        "grid.seed=[0]",
    ]
    argv = ["arrange", "--config", str(OFFLINE), "--set", f"workdir={tmp_path}"]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("volume=")]
    assert len(lines) == 2 and all("order.parquet" in line for line in lines)
    assert "arrangements:" in captured.err and "TMA nearest" in captured.err  # progress bars on stderr
    tma_path = next(line for line in lines if "tma_min_max" in line).split(" -> ")[1].split(" (")[0]
    rounds = pq.read_table(tma_path).column("round").to_pylist()
    assert len(rounds) == 144 and None not in rounds  # 36 training tasks × 4: the whole pool, every round set
