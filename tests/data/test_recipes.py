"""Study A's data-volume recipes (dynamics.data.recipes, SPEC §1.3): counts, nesting, order independence.

Run: `python -m pytest -q tests/data/test_recipes.py`
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pytest
from doit_pools import (
    CATEGORIES,
    POOL_SIZES,
    SYNTHETIC_SIZE,
    category_counts,
    even_shares,
    parquet_of,
    shuffled_rows,
    table_of,
    train_ids_of,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.config import STUDY_A_CAPS, DataConfig, Recipe, SampleConfig, named_recipe
from dynamics.data.formats import FORMATS, LoadRequest
from dynamics.data.problems import DataError, ProblemLog
from dynamics.data.recipes import apply_recipe, recipe_counts
from dynamics.data.sampling import sample_per_task
from dynamics.data.schema import split_of, to_table
from dynamics.data.sources import load_examples

PROPERTY = settings(max_examples=25, deadline=None)


@pytest.fixture(scope="module")
def pools() -> pa.Table:
    return table_of(POOL_SIZES, synthetic=SYNTHETIC_SIZE)


# --- recipes: counts --------------------------------------------------------------------------------------


@PROPERTY
@given(total=st.integers(1, 10000), seed=st.integers(0, 2**32))
def test_curated_n_is_split_evenly_over_categories(pools: pa.Table, total: int, seed: int) -> None:
    sampled = apply_recipe(pools, named_recipe(f"curated-{total}"), seed)
    assert category_counts(sampled) == Counter({a: n for a, n in even_shares(total, list(CATEGORIES)).items() if n})


@pytest.mark.parametrize("total", [10, 40, 160, 640, 2560, 10000])
def test_study_volumes_take_a_tenth_per_category(pools: pa.Table, total: int) -> None:
    assert category_counts(apply_recipe(pools, named_recipe(f"curated-{total}"), 0)) == Counter(
        dict.fromkeys(CATEGORIES, total // 10)
    )


def test_reconstruct_respects_caps_and_the_10k_budget(pools: pa.Table) -> None:
    others = sorted(set(CATEGORIES) - set(STUDY_A_CAPS))
    left = 10000 - sum(STUDY_A_CAPS.values())  # 8872 over 7 categories: 1267 each, 3 of them one more
    expected = {**STUDY_A_CAPS, **even_shares(left, others)}
    assert expected["biology"] == 1268 and expected["understanding"] == 1267
    counts = category_counts(apply_recipe(pools, named_recipe("reconstruct"), 0))
    assert counts == Counter(expected)
    assert counts.total() == 10000


def test_maximum_takes_every_pool_up_to_the_caps(pools: pa.Table) -> None:
    expected = {a: min(n, STUDY_A_CAPS.get(a, n)) for a, n in POOL_SIZES.items()}
    assert category_counts(apply_recipe(pools, named_recipe("maximum"), 0)) == Counter(expected)


@pytest.mark.parametrize("synthetic", [10, 160, 700])
def test_mix_is_maximum_plus_synthetic(pools: pa.Table, synthetic: int) -> None:
    expected = {a: min(n, STUDY_A_CAPS.get(a, n)) for a, n in POOL_SIZES.items()} | {"synthetic": synthetic}
    mixed = apply_recipe(pools, named_recipe(f"mix-{synthetic}"), 0)
    assert category_counts(mixed) == Counter(expected)
    assert train_ids_of(apply_recipe(pools, named_recipe("maximum"), 0)) < train_ids_of(mixed)


@pytest.mark.parametrize("synthetic", [10, 40, 640])
def test_synthetic_n_takes_only_synthetic_rows(pools: pa.Table, synthetic: int) -> None:
    picked = apply_recipe(pools, named_recipe(f"synthetic-{synthetic}"), 0)
    assert category_counts(picked) == Counter(synthetic=synthetic)


def test_inline_recipe_restricted_to_some_categories() -> None:
    table = table_of({"math": 50, "code": 50, "ethics": 50, "history": 50})
    recipe = Recipe(curated_total=31, categories=["math", "code", "ethics"], caps={"ethics": 4})
    assert category_counts(apply_recipe(table, recipe, 0)) == Counter(code=14, math=13, ethics=4)


def test_short_pool_gives_all_it_has_and_the_shortfall_is_not_redistributed() -> None:
    table = table_of({"math": 50, "code": 50, "ethics": 3, "history": 50})
    with pytest.warns(UserWarning, match=r"taking all of them\): ethics 3/10"):
        sampled = apply_recipe(table, named_recipe("curated-40"), 0)
    assert category_counts(sampled) == Counter(math=10, code=10, history=10, ethics=3)


@PROPERTY
@given(
    available=st.dictionaries(st.sampled_from(CATEGORIES), st.integers(1, 300), min_size=1),
    caps=st.dictionaries(st.sampled_from(CATEGORIES), st.integers(0, 200)),
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
            assert sum(counts.values()) == total  # budget freed by caps goes to the other categories
        previous = counts


# --- recipes: nesting, order independence, determinism --------------------------------------------------


@PROPERTY
@given(totals=st.lists(st.integers(1, 10000), min_size=2, max_size=4, unique=True), seed=st.integers(0, 2**32))
def test_growing_curated_recipes_are_nested(pools: pa.Table, totals: list[int], seed: int) -> None:
    subsets = [train_ids_of(apply_recipe(pools, Recipe(curated_total=n), seed)) for n in sorted(totals)]
    for smaller, larger in zip(subsets, subsets[1:], strict=False):
        assert smaller < larger


@PROPERTY
@given(totals=st.lists(st.integers(1, SYNTHETIC_SIZE), min_size=2, max_size=4, unique=True), seed=st.integers(0, 99))
def test_growing_synthetic_recipes_are_nested(pools: pa.Table, totals: list[int], seed: int) -> None:
    subsets = [train_ids_of(apply_recipe(pools, Recipe(synthetic=n), seed)) for n in sorted(totals)]
    for smaller, larger in zip(subsets, subsets[1:], strict=False):
        assert smaller < larger


def test_study_chains_are_nested(pools: pa.Table) -> None:
    def ids(name: str) -> set[str]:
        return train_ids_of(apply_recipe(pools, named_recipe(name), 3))

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
    assert train_ids_of(apply_recipe(shuffled_rows(pools, shuffle), recipe, seed)) == train_ids_of(
        apply_recipe(pools, recipe, seed)
    )


@PROPERTY
@given(seed=st.integers(0, 2**32))
def test_same_seed_gives_identical_parquet_bytes(pools: pa.Table, seed: int) -> None:
    recipe = named_recipe("mix-40")
    assert parquet_of(apply_recipe(pools, recipe, seed)) == parquet_of(apply_recipe(pools, recipe, seed))


@PROPERTY
@given(seeds=st.lists(st.integers(0, 2**32), min_size=2, max_size=2, unique=True))
def test_different_seeds_give_different_subsets(pools: pa.Table, seeds: list[int]) -> None:
    first, second = (train_ids_of(apply_recipe(pools, named_recipe("curated-100"), s)) for s in seeds)
    assert first != second


def test_non_train_rows_pass_through_in_order(pools: pa.Table) -> None:
    sampled = apply_recipe(pools, named_recipe("curated-40"), 0)
    for split in ("test", "valid"):
        assert split_of(sampled, split).equals(split_of(pools, split))


def test_output_keeps_the_input_row_order(pools: pa.Table) -> None:
    shuffled = shuffled_rows(pools, 5)
    position = {row_id: i for i, row_id in enumerate(shuffled.column("id").to_pylist())}
    kept = [position[row_id] for row_id in apply_recipe(shuffled, named_recipe("mix-40"), 0).column("id").to_pylist()]
    assert kept == sorted(kept)


def _doit_tree(root: Path, suffix_of: Mapping[str, str], reverse_lines: bool = False) -> Path:
    """DoIT files for four categories plus a synthetic file, each file named <category>_<suffix>.json."""
    sizes = {"ethics": 30, "role_play": 25, "creative_writing": 40, "math": 35}
    for category, size in sizes.items():
        folder = root / "curated" / "full"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [{"messages": [{"role": "user", "content": f"{category} {i}"}, {"role": "assistant", "content": "ok"}]}
                 for i in range(size)]  # fmt: skip
        (folder / f"{category}_{suffix_of[category]}.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    folder = root / "synthetic" / "40960"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"messages": [{"role": "user", "content": f"s {i}"}, {"role": "assistant", "content": "ok"}]}
             for i in range(60)]  # fmt: skip
    (folder / f"synthetic_{suffix_of['synthetic']}.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def _load_doit(root: Path, pools: list[str]) -> pa.Table:
    data_format = FORMATS.get("doit")
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
    second = shuffled_rows(_load_doit(renamed, ["synthetic/40960", "curated/full"]), 1)
    assert first.column("id").to_pylist() != second.column("id").to_pylist()  # really listed differently
    for recipe in ("curated-20", "mix-30", "maximum", "synthetic-50"):
        picked_first = apply_recipe(first, named_recipe(recipe), 7)
        picked_second = apply_recipe(second, named_recipe(recipe), 7)
        assert train_ids_of(picked_first) == train_ids_of(picked_second)
    assert category_counts(apply_recipe(first, named_recipe("curated-20"), 7)) == Counter(
        dict.fromkeys(["ethics", "role_play", "creative_writing", "math"], 5)
    )


# --- recipes: errors ----------------------------------------------------------------------------------------


def test_synthetic_without_synthetic_rows_is_an_error() -> None:
    with pytest.raises(DataError, match=r"asks for 10 synthetic examples .* add 'synthetic/40960' to options.pools"):
        apply_recipe(table_of({"math": 5}), named_recipe("synthetic-10"), 0)


def test_cap_or_category_without_rows_is_an_error() -> None:
    with pytest.raises(DataError, match=r"category 'creative_writing' has no training rows; present: \['math'\]"):
        apply_recipe(table_of({"math": 5}), Recipe(curated_total=4, caps={"creative_writing": 3}), 0)


def test_a_presets_doit_caps_leave_other_categories_alone() -> None:
    chosen = apply_recipe(table_of({"math": 5, "logic": 70}, test=0, valid=0), named_recipe("maximum"), 0)
    assert chosen.num_rows == 75  # no DoIT ability present: the ethics/role_play/creative_writing caps bind nothing
    chosen = apply_recipe(table_of({"ethics": 80, "logic": 70}, test=0, valid=0), named_recipe("maximum"), 0)
    assert chosen.num_rows == 64 + 70  # the ethics cap still binds where ethics is present
    with pytest.raises(DataError, match="category 'code' has no training rows"):
        apply_recipe(table_of({"math": 5}), Recipe(curated_total=4, categories=["code"]), 0)


# --- config wiring ------------------------------------------------------------------------------------------


def test_loading_runs_the_sample_then_the_recipe(pools: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "pools.parquet"
    path.write_bytes(parquet_of(pools))
    config = DataConfig(
        source="canonical", path=str(path), sample={"per_train_task": 300, "per_test_task": 1}, recipe="curated-100"
    )
    expected = apply_recipe(
        sample_per_task(pools, SampleConfig(per_train_task=300, per_test_task=1), 4), named_recipe("curated-100"), 4
    )
    assert load_examples(config, seed=4).equals(expected)
    assert load_examples(DataConfig(source="canonical", path=str(path)), seed=4).equals(pools)
