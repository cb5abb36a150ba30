"""The typed trial payload (dynamics.sweep.payload): one grid point becomes one fully resolved TrialSpec."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa

from dynamics.arrange.artifact import ArrangementKey, ArrangementRef, order_table
from dynamics.config import TrialFactors, load_config
from dynamics.io import parquet_bytes
from dynamics.models import ModelSource
from dynamics.sweep.payload import ShippedArrangement, ShippedReplicate, SweepPayload, trial_name
from dynamics.tracking import TrackedRun

OFFLINE = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "offline.yaml"


def _payload() -> SweepPayload:
    ids = [f"item-{k}" for k in range(6)]
    pool = pa.table({"id": ids, "messages": [[{"role": "user", "content": f"q{k}"}] for k in range(6)]})
    test = pa.table({"id": ["t"], "task": ["x"], "category": ["c"], "messages": [[{"role": "user", "content": "t"}]]})
    zeros = np.zeros(6, dtype=np.float32)
    order = order_table(ids, ["task"] * 6, zeros, zeros, zeros, np.array([4, 0, 2]))  # a 3-item arrangement
    shipped = ShippedArrangement(ArrangementRef("/arr/x", "f" * 64, 3), parquet_bytes(order), {"w_avg": 0.5})
    return SweepPayload(
        config=load_config(OFFLINE),
        replicates={0: ShippedReplicate(pool, test)},
        arrangements={ArrangementKey(3, "nft", 0): shipped},
        models={"tiny-2m": ModelSource("/models/tiny", "/models/tiny", 1234)},
        reward_model=None,
        sweep_run=TrackedRun("sqlite:///nowhere.db", "parent"),
        storage_path="/storage",
    )


def test_a_grid_point_becomes_a_trial_with_its_items_in_arrangement_order() -> None:
    factors = TrialFactors(volume=3, model="tiny-2m", permutation="nft", seed=0)
    spec = _payload().trial(factors)
    assert spec.name == trial_name(factors) == "n=3 model=tiny-2m perm=nft seed=0"
    assert spec.arranged.column("id").to_pylist() == ["item-4", "item-0", "item-2"]
    assert [m[0]["content"] for m in spec.arranged.column("messages").to_pylist()] == ["q4", "q0", "q2"]
    assert {k: spec.params[k] for k in ("recipe", "volume", "model", "permutation", "seed")} == factors.model_dump()
    assert spec.params["arrangement_size"] == 3 and spec.params["arrangement_w_avg"] == 0.5
    assert spec.params["num_parameters"] == 1234
    assert spec.tags["arrangement_hash"] == "f" * 64 and spec.sweep_run.run_id == "parent"
    assert spec.train.template == "study_b" and spec.scaling.num_workers == 2  # the typed sections themselves


def test_the_payload_and_its_specs_pickle_whole() -> None:
    payload = pickle.loads(pickle.dumps(_payload()))  # as Ray ships it
    spec = payload.trial(TrialFactors(volume=3, model="tiny-2m", permutation="nft", seed=0))
    assert pickle.loads(pickle.dumps(spec)).arranged.equals(spec.arranged)
