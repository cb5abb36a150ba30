"""Study A's recipes as a grid factor: one sweep holds curated-N and synthetic-N at every volume, plus fixed
recipes; planning sizes them against the loaded pool and each trial's items are the recipe's seeded prefixes.

Run: `python -m pytest -q tests/sweep/test_grid_recipes.py`
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from dynamics.arrange.artifact import ArrangementKey
from dynamics.arrange.stage import training_subset
from dynamics.config import SYNTHETIC, GridConfig, TrialFactors, load_config
from dynamics.data.problems import DataError
from dynamics.sweep.payload import trial_name
from dynamics.sweep.study import prepare

OFFLINE = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "offline.yaml"


def _config(tmp_path: Path, **overrides: object):
    base = {
        "workdir": str(tmp_path / "work"),
        "data.options": {"per_train_task": 10, "per_test_task": 4, "synthetic": 300},
        "grid.recipe": ["curated", "synthetic", "maximum"],
        "grid.volume": [40, 160],
        "grid.permutation": ["rt"],
        "grid.seed": [0, 1],
        "evaluate.in_loop": [],
    }
    return load_config(OFFLINE, base | overrides)


def test_families_take_every_volume_and_a_fixed_recipe_is_one_point() -> None:
    recipes = ["curated", "synthetic", "synthetic-40", "synthetic-40960", "reconstruct"]
    grid = GridConfig(recipe=recipes, volume=[10, 40], model=["m"], seed=[0])
    heads = [(point["recipe"], point["volume"]) for point in grid.raw_points() if point["permutation"] == "nft"]
    assert heads == [
        ("curated", 10),
        ("curated", 40),
        ("synthetic", 10),
        ("synthetic", 40),  # synthetic-40 is this point already
        ("synthetic", 40960),  # a family's point beyond the grid's volumes
        ("reconstruct", None),
    ]
    with pytest.raises(ValueError, match="resolve against the pool"):
        grid.points()  # reconstruct's size is the pool's to say


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"recipe": ["curated", "synthtic"]}, "unknown grid recipe 'synthtic'"),
        ({"recipe": ["curated-x"]}, "unknown grid recipe 'curated-x'"),
        ({"recipe": ["cured-640"]}, "unknown grid recipe 'cured-640'"),
        ({"recipe": ["curated"], "volume": [10, "all"]}, "use the fixed recipe 'maximum'"),
        ({"recipe": ["curated", "curated"]}, "recipes repeat"),
    ],
)
def test_a_bad_grid_recipe_is_refused_with_its_name(grid: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GridConfig(**grid)


def test_grid_recipe_and_data_recipe_cannot_both_choose(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="grid.recipe and data.recipe"):
        _config(tmp_path, **{"data.recipe": "curated-40"})


def test_planning_sizes_fixed_recipes_and_names_trials_by_recipe(tmp_path: Path) -> None:
    study = prepare(_config(tmp_path))
    pool = study.train_pool
    curated = pool.num_rows - Counter(pool.column("category").to_pylist())[SYNTHETIC]
    assert study.config.grid.recipe_sizes == {"maximum": curated}  # no cap binds at 10 per task
    names = {trial_name(trial) for trial in study.trials if trial.seed == 0}
    assert names == {
        "curated-40 model=tiny-2m perm=rt seed=0",
        "curated-160 model=tiny-2m perm=rt seed=0",
        "synthetic-40 model=tiny-2m perm=rt seed=0",
        "synthetic-160 model=tiny-2m perm=rt seed=0",
        f"maximum n={curated} model=tiny-2m perm=rt seed=0",
    }
    assert len(study.trials) == 10


def test_each_recipe_trains_on_its_own_nested_seeded_items(tmp_path: Path) -> None:
    study = prepare(_config(tmp_path))

    def items(recipe: str, volume: int, seed: int) -> list[str]:
        subset = training_subset(study.replicate(seed).train_pool, ArrangementKey(volume, "rt", seed, recipe))
        return subset.column("id").to_pylist()

    def categories(ids: list[str]) -> Counter:
        category_of = dict(
            zip(study.train_pool.column("id").to_pylist(), study.train_pool.column("category").to_pylist(), strict=True)
        )
        return Counter(category_of[i] for i in ids)

    curated40, curated160 = items("curated", 40, 0), items("curated", 160, 0)
    assert len(curated40) == 40 and len(curated160) == 160
    assert set(curated40) < set(curated160)  # nested
    assert SYNTHETIC not in categories(curated160)
    shares = categories(curated40).values()
    assert max(shares) - min(shares) <= 1  # 40 split evenly over the categories
    synthetic40, synthetic160 = items("synthetic", 40, 0), items("synthetic", 160, 0)
    assert categories(synthetic160) == {SYNTHETIC: 160} and set(synthetic40) < set(synthetic160)
    assert items("curated", 40, 1) != curated40  # another seed draws other items
    assert items("curated", 40, 0) == curated40  # and the same seed the same ones


def test_a_synthetic_family_without_synthetic_rows_fails_in_planning(tmp_path: Path) -> None:
    config = _config(tmp_path, **{"data.options": {"per_train_task": 10, "per_test_task": 4}})
    with pytest.raises(DataError, match=r"grid.recipe: 'synthetic': .*no 'synthetic' rows"):
        prepare(config)


def test_factors_read_back_from_params_with_and_without_a_recipe() -> None:
    old_run = {"volume": "160", "model": "tiny-2m", "permutation": "nft", "seed": "0"}
    assert TrialFactors.from_params(old_run).recipe is None
    assert TrialFactors.from_params(old_run | {"recipe": "None"}).recipe is None
    factors = TrialFactors.from_params(old_run | {"recipe": "synthetic"})
    assert factors.recipe == "synthetic" and factors.recipe_name == "synthetic-160"
