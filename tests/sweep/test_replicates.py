"""Each grid seed is a full replicate of the data: a source that samples or generates by seed gives every seed its
own items (and its own arrangements and trials); one that does not gives every seed the same data, held once.
Observed on what `prepare` loads and what a trial receives, not on flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamics.config import load_config
from dynamics.io import table_digest
from dynamics.sweep.payload import shipped_replicates
from dynamics.sweep.study import prepare

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _offline(tmp_path: Path, **changes):
    overrides = {"workdir": str(tmp_path / "work"), "grid.seed": [0, 1, 2], "grid.volume": [16, "all"]} | changes
    return prepare(load_config(CONFIGS / "offline.yaml", overrides))


def _niv2_sample(sample: dict) -> dict:
    """Overrides that point the offline study at the NIV2 sample, drawn as `sample` says."""
    return {"data.source": "niv2", "data.path": str(SHARED / "niv2-sample"), "data.options": {}, "data.sample": sample}


def test_every_seed_draws_its_own_built_in_data(tmp_path: Path) -> None:
    study = _offline(tmp_path)
    pools = [study.replicate(seed).train_pool for seed in (0, 1, 2)]
    tests = [study.replicate(seed).test for seed in (0, 1, 2)]
    assert len({table_digest(pool) for pool in pools}) == 3 and len({table_digest(test) for test in tests}) == 3
    first_prompts = {pool.column("messages")[0].as_py()[0]["content"] for pool in pools}
    assert len(first_prompts) == 3  # other items, not the same items renamed
    assert study.config.grid.volume == [16, min(pool.num_rows for pool in pools)]
    assert study.train_pool.equals(pools[0])  # the first seed's, as before


def test_a_trial_receives_the_data_of_its_own_seed(tmp_path: Path) -> None:
    study = _offline(tmp_path)
    shipped = shipped_replicates(study)
    for seed in (0, 2):
        assert shipped[seed].test.column("id").to_pylist() == study.replicate(seed).test.column("id").to_pylist()
        assert set(shipped[seed].train_pool.column("id").to_pylist()) == set(
            study.replicate(seed).train_pool.column("id").to_pylist()
        )
    assert shipped[0] is not shipped[1]


@pytest.mark.skipif(not (SHARED / "niv2-sample").is_dir(), reason=f"no NIV2 sample at {SHARED}")
def test_a_source_that_ignores_the_seed_gives_every_seed_one_shared_replicate(tmp_path: Path) -> None:
    study = _offline(tmp_path, **_niv2_sample({"mode": "first", "per_train_task": 10, "per_test_task": 5}))  # no seed
    assert study.replicate(0) is study.replicate(1) is study.replicate(2)
    shipped = shipped_replicates(study)
    assert shipped[0] is shipped[1] is shipped[2]  # sent to the trials once


@pytest.mark.skipif(not (SHARED / "niv2-sample").is_dir(), reason=f"no NIV2 sample at {SHARED}")
def test_random_sampling_draws_other_items_per_seed(tmp_path: Path) -> None:
    study = _offline(tmp_path, **_niv2_sample({"mode": "random", "per_train_task": 5, "per_test_task": 3}))
    ids = [set(study.replicate(seed).train_pool.column("id").to_pylist()) for seed in (0, 1, 2)]
    assert ids[0] != ids[1] and ids[1] != ids[2]


def _factors(model: str, volume: int, permutation: str, seed: int):
    from dynamics.config import TrialFactors

    return TrialFactors(volume=volume, model=model, permutation=permutation, seed=seed)


def test_a_trial_is_a_seed_repeat_only_when_model_data_and_order_are_all_the_same() -> None:
    from dynamics.arrange.artifact import ArrangementKey
    from dynamics.sweep.plan import seed_repeats

    shared, other = object(), object()
    data = {0: shared, 1: shared, 2: other}  # seeds 0 and 1 load the same data; seed 2 its own
    trials = [
        _factors(model, 90, perm, seed) for model in ("tiny", "big") for perm in ("nft", "rt") for seed in (2, 1, 0)
    ]
    orders = {ArrangementKey(90, "nft", seed): "same-order" for seed in (0, 1, 2)}
    orders |= {ArrangementKey(90, "rt", seed): f"shuffle-{seed}" for seed in (0, 1, 2)}
    repeats = seed_repeats(trials, data, orders, free_models={"tiny"})
    # nft seed 1: same data as seed 0 and the same order; seed 2 has other data; rt's order moves with the seed;
    # 'big' (a model the seed moves) always runs
    assert repeats == {_factors("tiny", 90, "nft", 1): _factors("tiny", 90, "nft", 0)}


def test_only_built_in_models_trained_without_a_seeded_reshuffle_are_seed_free(tmp_path: Path) -> None:
    from dynamics.sweep.plan import seed_free_models

    both = {"grid.model": ["tiny-0.5m", "tiny-2m"]}
    config = load_config(CONFIGS / "offline.yaml", {"workdir": str(tmp_path)} | both)
    assert seed_free_models(config) == {"tiny-0.5m", "tiny-2m"}
    reshuffled = load_config(CONFIGS / "offline.yaml", {"train.epochs": 2, "train.epoch_order": "reshuffle"} | both)
    assert seed_free_models(reshuffled) == set()
    repeated = load_config(CONFIGS / "offline.yaml", {"train.epochs": 2, "train.epoch_order": "repeat"} | both)
    assert seed_free_models(repeated) == {"tiny-0.5m", "tiny-2m"}
    pretrained = load_config(CONFIGS / "study_b_niv2_similarity.yaml", {"data.path": str(tmp_path)})
    assert seed_free_models(pretrained) == set()
