"""Tests for the sampling protocols of SPEC §1.3 (dynamics.data.sampling): per-task draws and DoIT recipes.

Run: `python -m pytest -q tests/data/test_sampling.py`
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.config import DataConfig, parse_config
from dynamics.data.formats import LoadRequest, get_format
from dynamics.data.problems import DataError, ProblemLog
from dynamics.data.sampling import (
    STUDY_A_CAPS,
    Recipe,
    SampleConfig,
    apply_recipe,
    apply_sampling,
    named_recipe,
    recipe_counts,
    sample_per_task,
)
from dynamics.data.schema import split_of, to_table

ABILITIES = (
    "biology", "chinese", "code", "creative_writing", "ethics",
    "history", "math", "reasoning", "role_play", "understanding",
)  # fmt: skip
# Every ability can give 1000 (baseline) and the uncapped ones 1268 (reconstruct).
POOL_SIZES = {ability: 1300 + 17 * index for index, ability in enumerate(ABILITIES)}
POOL_SIZES.update(ethics=1100, role_play=1050, creative_writing=1200)
SYNTHETIC_SIZE = 700
PROPERTY = settings(max_examples=25, deadline=None)


def _row(row_id: str, group: str, split: str) -> dict[str, Any]:
    return {
        "id": row_id,
        "source": "doit",
        "task": group,
        "category": group,
        "split": split,
        "messages": [{"role": "user", "content": f"q {row_id}"}, {"role": "assistant", "content": f"a {row_id}"}],
        "references": [f"a {row_id}"],
    }


def _table(train: Mapping[str, int], synthetic: int = 0, test: int = 3, valid: int = 2) -> pa.Table:
    """Curated train pools, a synthetic pool, and test/valid rows for the first abilities (test tasks differ
    from train tasks, as the loader's leak check requires)."""
    rows = [_row(f"doit/curated/full/{a}/{i:06d}", a, "train") for a, n in train.items() for i in range(1, n + 1)]
    rows += [_row(f"doit/synthetic/40960/synthetic/{i:06d}", "synthetic", "train") for i in range(1, synthetic + 1)]
    for ability in list(train)[:2]:
        rows += [_row(f"doit/curated/test/{ability}/{i:06d}", f"{ability}-test", "test") for i in range(test)]
        rows += [_row(f"doit/curated/valid/{ability}/{i:06d}", ability, "valid") for i in range(valid)]
    return to_table(rows, origin="fixture")


def _shuffled(table: pa.Table, seed: int) -> pa.Table:
    return table.take(pa.array(np.random.default_rng(seed).permutation(table.num_rows), type=pa.int64()))


def _train_ids(table: pa.Table) -> set[str]:
    return set(split_of(table, "train").column("id").to_pylist())


def _counts(table: pa.Table) -> Counter[str]:
    return Counter(split_of(table, "train").column("category").to_pylist())


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pools() -> pa.Table:
    return _table(POOL_SIZES, synthetic=SYNTHETIC_SIZE)


def _even(total: int, abilities: list[str]) -> dict[str, int]:
    base, extra = divmod(total, len(abilities))
    return {a: base + (i < extra) for i, a in enumerate(sorted(abilities))}


# --- presets ------------------------------------------------------------------------------------------------


def test_named_presets_are_the_studys_settings() -> None:
    assert named_recipe("curated-640") == Recipe(curated_total=640)
    assert named_recipe("baseline") == named_recipe("curated-10000")
    assert named_recipe("synthetic-160") == Recipe(curated_total=None, synthetic=160)
    assert named_recipe("reconstruct") == Recipe(curated_total=10000, caps=STUDY_A_CAPS)
    assert named_recipe("maximum") == Recipe(curated_total="all", caps=STUDY_A_CAPS)
    assert named_recipe("mix-2560") == Recipe(curated_total="all", caps=STUDY_A_CAPS, synthetic=2560)
    assert STUDY_A_CAPS == {"ethics": 64, "role_play": 64, "creative_writing": 1000}


@pytest.mark.parametrize("name", ["curated", "curated-0", "curated-x", "synth-10", "mix-", "Baseline", "maximum-3"])
def test_unknown_preset_lists_the_patterns(name: str) -> None:
    with pytest.raises(ValueError, match=r"curated-N, synthetic-N, mix-N, baseline, reconstruct, maximum"):
        named_recipe(name)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"curated_total": -1}, "expected an integer >= 0, 'all' or null"),
        ({"curated_total": "most"}, "expected an integer >= 0, 'all' or null"),
        ({"curated_total": 0}, "selects no training examples"),
        ({"synthetic": -5, "curated_total": 10}, "greater than or equal to 0"),
        ({"curated_total": 10, "caps": {"ethics": -1}}, "caps must be >= 0"),
        ({"curated_total": 10, "caps": {"synthetic": 3}}, "not a curated ability"),
        ({"curated_total": 10, "abilities": []}, "non-empty list"),
        ({"curated_total": 10, "abilities": ["math", "math"]}, "without repeats"),
        ({"curated_total": 10, "budget": 3}, "Extra inputs"),
    ],
)
def test_recipe_rejects_malformed_fields(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recipe(**fields)


# --- recipes: counts --------------------------------------------------------------------------------------


@PROPERTY
@given(total=st.integers(1, 10000), seed=st.integers(0, 2**32))
def test_curated_n_is_split_evenly_over_abilities(pools: pa.Table, total: int, seed: int) -> None:
    sampled = apply_recipe(pools, named_recipe(f"curated-{total}"), seed)
    assert _counts(sampled) == Counter({a: n for a, n in _even(total, list(ABILITIES)).items() if n})


@pytest.mark.parametrize("total", [10, 40, 160, 640, 2560, 10000])
def test_study_volumes_take_a_tenth_per_ability(pools: pa.Table, total: int) -> None:
    assert _counts(apply_recipe(pools, named_recipe(f"curated-{total}"), 0)) == Counter(
        dict.fromkeys(ABILITIES, total // 10)
    )


def test_reconstruct_respects_caps_and_the_10k_budget(pools: pa.Table) -> None:
    others = sorted(set(ABILITIES) - set(STUDY_A_CAPS))
    left = 10000 - sum(STUDY_A_CAPS.values())  # 8872 over 7 abilities: 1267 each, 3 of them one more
    expected = {**STUDY_A_CAPS, **_even(left, others)}
    assert expected["biology"] == 1268 and expected["understanding"] == 1267
    counts = _counts(apply_recipe(pools, named_recipe("reconstruct"), 0))
    assert counts == Counter(expected)
    assert counts.total() == 10000


def test_maximum_takes_every_pool_up_to_the_caps(pools: pa.Table) -> None:
    expected = {a: min(n, STUDY_A_CAPS.get(a, n)) for a, n in POOL_SIZES.items()}
    assert _counts(apply_recipe(pools, named_recipe("maximum"), 0)) == Counter(expected)


@pytest.mark.parametrize("synthetic", [10, 160, 700])
def test_mix_is_maximum_plus_synthetic(pools: pa.Table, synthetic: int) -> None:
    expected = {a: min(n, STUDY_A_CAPS.get(a, n)) for a, n in POOL_SIZES.items()} | {"synthetic": synthetic}
    mixed = apply_recipe(pools, named_recipe(f"mix-{synthetic}"), 0)
    assert _counts(mixed) == Counter(expected)
    assert _train_ids(apply_recipe(pools, named_recipe("maximum"), 0)) < _train_ids(mixed)


@pytest.mark.parametrize("synthetic", [10, 40, 640])
def test_synthetic_n_takes_only_synthetic_rows(pools: pa.Table, synthetic: int) -> None:
    assert _counts(apply_recipe(pools, named_recipe(f"synthetic-{synthetic}"), 0)) == Counter(synthetic=synthetic)


def test_inline_recipe_restricted_to_some_abilities() -> None:
    table = _table({"math": 50, "code": 50, "ethics": 50, "history": 50})
    recipe = Recipe(curated_total=31, abilities=["math", "code", "ethics"], caps={"ethics": 4})
    assert _counts(apply_recipe(table, recipe, 0)) == Counter(code=14, math=13, ethics=4)


def test_short_pool_gives_all_it_has_and_the_shortfall_is_not_redistributed() -> None:
    table = _table({"math": 50, "code": 50, "ethics": 3, "history": 50})
    with pytest.warns(UserWarning, match=r"taking all of them\): ethics 3/10"):
        sampled = apply_recipe(table, named_recipe("curated-40"), 0)
    assert _counts(sampled) == Counter(math=10, code=10, history=10, ethics=3)


@PROPERTY
@given(
    available=st.dictionaries(st.sampled_from(ABILITIES), st.integers(1, 300), min_size=1),
    caps=st.dictionaries(st.sampled_from(ABILITIES), st.integers(0, 200)),
    totals=st.lists(st.integers(1, 3000), min_size=2, max_size=5),
)
def test_counts_grow_with_the_budget_and_respect_caps(
    available: dict[str, int], caps: dict[str, int], totals: list[int]
) -> None:
    caps = {a: cap for a, cap in caps.items() if a in available}
    previous: dict[str, int] = {}
    for total in sorted(totals):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short pools warn; that is tested on its own
            counts = recipe_counts(available, Recipe(curated_total=total, caps=caps))
        assert all(counts[a] <= min(available[a], caps.get(a, available[a])) for a in counts)
        assert all(counts[a] >= previous.get(a, 0) for a in counts)
        limit = {a: caps.get(a, total) for a in available}
        if all(available[a] >= limit[a] for a in available) and total <= sum(limit.values()):
            assert sum(counts.values()) == total  # budget freed by caps goes to the other abilities
        previous = counts


# --- recipes: nesting, order independence, determinism --------------------------------------------------


@PROPERTY
@given(totals=st.lists(st.integers(1, 10000), min_size=2, max_size=4, unique=True), seed=st.integers(0, 2**32))
def test_growing_curated_recipes_are_nested(pools: pa.Table, totals: list[int], seed: int) -> None:
    subsets = [_train_ids(apply_recipe(pools, Recipe(curated_total=n), seed)) for n in sorted(totals)]
    for smaller, larger in zip(subsets, subsets[1:], strict=False):
        assert smaller < larger


@PROPERTY
@given(totals=st.lists(st.integers(1, SYNTHETIC_SIZE), min_size=2, max_size=4, unique=True), seed=st.integers(0, 99))
def test_growing_synthetic_recipes_are_nested(pools: pa.Table, totals: list[int], seed: int) -> None:
    subsets = [_train_ids(apply_recipe(pools, Recipe(synthetic=n), seed)) for n in sorted(totals)]
    for smaller, larger in zip(subsets, subsets[1:], strict=False):
        assert smaller < larger


def test_study_chains_are_nested(pools: pa.Table) -> None:
    def ids(name: str) -> set[str]:
        return _train_ids(apply_recipe(pools, named_recipe(name), 3))

    chain = [ids(f"curated-{n}") for n in (10, 40, 160, 640, 2560)] + [ids("baseline")]
    chain_b = [ids("reconstruct"), ids("maximum"), ids("mix-10"), ids("mix-640")]
    for links in (chain, chain_b):
        for smaller, larger in zip(links, links[1:], strict=False):
            assert smaller < larger
    assert ids("synthetic-40") < ids("mix-640")


@PROPERTY
@given(shuffle=st.integers(0, 2**32), seed=st.integers(0, 2**32), name=st.sampled_from(["curated-160", "mix-40"]))
def test_row_order_does_not_change_the_subset(pools: pa.Table, shuffle: int, seed: int, name: str) -> None:
    recipe = named_recipe(name)
    assert _train_ids(apply_recipe(_shuffled(pools, shuffle), recipe, seed)) == _train_ids(
        apply_recipe(pools, recipe, seed)
    )


@PROPERTY
@given(seed=st.integers(0, 2**32))
def test_same_seed_gives_identical_parquet_bytes(pools: pa.Table, seed: int) -> None:
    recipe = named_recipe("mix-40")
    assert _parquet(apply_recipe(pools, recipe, seed)) == _parquet(apply_recipe(pools, recipe, seed))


@PROPERTY
@given(seeds=st.lists(st.integers(0, 2**32), min_size=2, max_size=2, unique=True))
def test_different_seeds_give_different_subsets(pools: pa.Table, seeds: list[int]) -> None:
    first, second = (_train_ids(apply_recipe(pools, named_recipe("curated-100"), s)) for s in seeds)
    assert first != second


def test_non_train_rows_pass_through_in_order(pools: pa.Table) -> None:
    sampled = apply_recipe(pools, named_recipe("curated-40"), 0)
    for split in ("test", "valid"):
        assert split_of(sampled, split).equals(split_of(pools, split))


def test_output_keeps_the_input_row_order(pools: pa.Table) -> None:
    shuffled = _shuffled(pools, 5)
    position = {row_id: i for i, row_id in enumerate(shuffled.column("id").to_pylist())}
    kept = [position[row_id] for row_id in apply_recipe(shuffled, named_recipe("mix-40"), 0).column("id").to_pylist()]
    assert kept == sorted(kept)


def _doit_tree(root: Path, suffix_of: Mapping[str, str], reverse_lines: bool = False) -> Path:
    """DoIT files for four abilities plus a synthetic file, each file named <ability>_<suffix>.json."""
    sizes = {"ethics": 30, "role_play": 25, "creative_writing": 40, "math": 35}
    for ability, size in sizes.items():
        folder = root / "curated" / "full"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [{"messages": [{"role": "user", "content": f"{ability} {i}"}, {"role": "assistant", "content": "ok"}]}
                 for i in range(size)]  # fmt: skip
        (folder / f"{ability}_{suffix_of[ability]}.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    folder = root / "synthetic" / "40960"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"messages": [{"role": "user", "content": f"s {i}"}, {"role": "assistant", "content": "ok"}]}
             for i in range(60)]  # fmt: skip
    (folder / f"synthetic_{suffix_of['synthetic']}.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def _load_doit(root: Path, pools: list[str]) -> pa.Table:
    data_format = get_format("doit")
    request = LoadRequest(str(root), "doit", data_format.options.model_validate({"pools": pools}))
    return to_table([row for _, _, row in data_format.loader(request, ProblemLog())], origin=str(root))


def test_file_names_and_listing_order_do_not_change_the_subset(tmp_path: Path) -> None:
    plain = _doit_tree(
        tmp_path / "a", dict.fromkeys(["ethics", "role_play", "creative_writing", "math", "synthetic"], "full")
    )
    renamed = _doit_tree(
        tmp_path / "b", {"ethics": "zz", "role_play": "0", "creative_writing": "m9", "math": "a", "synthetic": "x"}
    )
    first = _load_doit(plain, ["curated/full", "synthetic/40960"])
    second = _shuffled(_load_doit(renamed, ["synthetic/40960", "curated/full"]), 1)
    assert first.column("id").to_pylist() != second.column("id").to_pylist()  # really listed differently
    for recipe in ("curated-20", "mix-30", "maximum", "synthetic-50"):
        picked_first = apply_recipe(first, named_recipe(recipe), 7)
        picked_second = apply_recipe(second, named_recipe(recipe), 7)
        assert _train_ids(picked_first) == _train_ids(picked_second)
    assert _counts(apply_recipe(first, named_recipe("curated-20"), 7)) == Counter(
        dict.fromkeys(["ethics", "role_play", "creative_writing", "math"], 5)
    )


# --- recipes: errors ----------------------------------------------------------------------------------------


def test_synthetic_without_synthetic_rows_is_an_error() -> None:
    with pytest.raises(DataError, match=r"asks for 10 synthetic examples .* add 'synthetic/40960' to options.pools"):
        apply_recipe(_table({"math": 5}), named_recipe("synthetic-10"), 0)


def test_cap_or_ability_without_rows_is_an_error() -> None:
    with pytest.raises(DataError, match=r"ability 'creative_writing' has no training rows; present: \['math'\]"):
        apply_recipe(_table({"math": 5}), named_recipe("reconstruct"), 0)
    with pytest.raises(DataError, match="ability 'code' has no training rows"):
        apply_recipe(_table({"math": 5}), Recipe(curated_total=4, abilities=["code"]), 0)


# --- Study B: instances per task --------------------------------------------------------------------------

TASK_SIZES = {"t_small": 3, "t_mid": 12, "t_big": 40, "t_other": 25}


@pytest.fixture(scope="module")
def tasks() -> pa.Table:
    rows = [_row(f"niv2/{t}/{i:04d}", t, "train") for t, n in TASK_SIZES.items() for i in range(n)]
    rows += [_row(f"niv2/e{t}/{i:04d}", f"e{t}", "test") for t in range(3) for i in range(9)]
    rows += [_row(f"niv2/v/{i:04d}", "t_mid", "valid") for i in range(6)]
    return _shuffled(to_table(rows, origin="fixture"), 11)  # file order need not be id order


def _per_task(table: pa.Table, split: str) -> Counter[str]:
    return Counter(split_of(table, split).column("task").to_pylist())


@pytest.mark.parametrize("mode", ["random", "first"])
def test_n_per_train_task_and_m_per_test_task(tasks: pa.Table, mode: str) -> None:
    sampled = sample_per_task(tasks, SampleConfig(mode=mode, per_train_task=20, per_test_task=5), seed=0)
    assert _per_task(sampled, "train") == Counter({t: min(n, 20) for t, n in TASK_SIZES.items()})
    assert _per_task(sampled, "test") == Counter(e0=5, e1=5, e2=5)
    assert split_of(sampled, "valid").equals(split_of(tasks, "valid"))


def test_first_mode_keeps_the_first_rows_in_file_order(tasks: pa.Table) -> None:
    sampled = sample_per_task(tasks, SampleConfig(mode="first", per_train_task=4, per_test_task=2), seed=0)
    seen: Counter[tuple[str, str]] = Counter()
    expected = []
    for row_id, task, split in zip(*(tasks.column(c).to_pylist() for c in ("id", "task", "split")), strict=True):
        seen[split, task] += 1
        if split == "valid" or seen[split, task] <= {"train": 4, "test": 2}[split]:
            expected.append(row_id)
    assert sampled.column("id").to_pylist() == expected


def test_unset_limits_keep_everything(tasks: pa.Table) -> None:
    assert sample_per_task(tasks, SampleConfig(), seed=0).equals(tasks)


@PROPERTY
@given(n=st.lists(st.integers(1, 45), min_size=2, max_size=2, unique=True), seed=st.integers(0, 2**32))
def test_random_draws_per_task_are_nested(tasks: pa.Table, n: list[int], seed: int) -> None:
    small, large = (
        set(sample_per_task(tasks, SampleConfig(per_train_task=k, per_test_task=k), seed).column("id").to_pylist())
        for k in sorted(n)
    )
    assert small <= large


@PROPERTY
@given(shuffle=st.integers(0, 2**32), seed=st.integers(0, 2**32))
def test_random_draws_per_task_ignore_row_order(tasks: pa.Table, shuffle: int, seed: int) -> None:
    config = SampleConfig(per_train_task=5, per_test_task=2)
    reordered = sample_per_task(_shuffled(tasks, shuffle), config, seed)
    assert set(reordered.column("id").to_pylist()) == set(sample_per_task(tasks, config, seed).column("id").to_pylist())


def test_sample_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        SampleConfig(per_train_task=0)
    with pytest.raises(ValueError, match="'random' or 'first'"):
        SampleConfig(mode="shuffled")


# --- config wiring ------------------------------------------------------------------------------------------


def test_apply_sampling_runs_sample_then_recipe(pools: pa.Table) -> None:
    config = DataConfig(sample={"per_train_task": 300, "per_test_task": 1}, recipe="curated-100")
    expected = apply_recipe(
        sample_per_task(pools, SampleConfig(per_train_task=300, per_test_task=1), 4), named_recipe("curated-100"), 4
    )
    assert apply_sampling(pools, config, seed=4).equals(expected)
    assert apply_sampling(pools, DataConfig(), seed=4).equals(pools)


def test_config_resolves_preset_names_and_takes_inline_recipes() -> None:
    assert DataConfig(recipe="mix-40").recipe == named_recipe("mix-40")
    inline = DataConfig(recipe={"curated_total": 30, "caps": {"ethics": 2}}).recipe
    assert inline == Recipe(curated_total=30, caps={"ethics": 2})


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("curated-ten", "key 'data.recipe': unknown recipe 'curated-ten'; expected one of curated-N"),
        ({"cureted_total": 10}, "unknown key 'data.recipe.cureted_total'; did you mean 'curated_total'?"),
        ({"curated_total": "most"}, "key 'data.recipe.curated_total': expected an integer >= 0, 'all' or null"),
    ],
)
def test_config_errors_name_the_recipe_key(recipe: Any, message: str) -> None:
    raw = {"models": {"m": {"pretrained": "x"}}, "grid": {"model": ["m"]}, "data": {"recipe": recipe}}
    with pytest.raises(ValueError, match=re.escape(f"study.yaml: {message}")):
        parse_config(raw, origin="study.yaml")
