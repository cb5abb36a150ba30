"""Recipe presets and the `data:` section's schema (dynamics.config.data, SPEC §1.3).

Run: `python -m pytest -q tests/config/test_data_section.py`
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from dynamics.config import STUDY_A_CAPS, DataConfig, Recipe, named_recipe, parse_config

# --- presets ------------------------------------------------------------------------------------------------


def test_named_presets_are_the_studys_settings() -> None:
    assert named_recipe("curated-640") == Recipe(curated_total=640)
    assert named_recipe("baseline") == named_recipe("curated-10000")
    assert named_recipe("synthetic-160") == Recipe(curated_total=None, synthetic=160)
    assert named_recipe("reconstruct") == Recipe(curated_total=10000, caps=STUDY_A_CAPS, caps_need_categories=False)
    assert named_recipe("maximum") == Recipe(curated_total="all", caps=STUDY_A_CAPS, caps_need_categories=False)
    assert named_recipe("mix-2560") == Recipe(
        curated_total="all", caps=STUDY_A_CAPS, synthetic=2560, caps_need_categories=False
    )
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
        ({"curated_total": 10, "caps": {"synthetic": 3}}, "not a curated category"),
        ({"curated_total": 10, "categories": []}, "non-empty list"),
        ({"curated_total": 10, "categories": ["math", "math"]}, "without repeats"),
        ({"curated_total": 10, "budget": 3}, "Extra inputs"),
    ],
)
def test_recipe_rejects_malformed_fields(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recipe(**fields)


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
