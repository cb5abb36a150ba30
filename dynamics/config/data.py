"""The `data:` section (SPEC §1): where examples come from, and how many of them a study takes.

A data source is named by a plain string: the planning step resolves it against the registry of formats and
names the key if it is unknown (`dynamics.sweep.plan`). Recipe presets (`curated-640`, `reconstruct`, …) are
data, so they live here with the schema they expand into.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dynamics.config.base import Section
from dynamics.config.paths import ExpandedPath, SourceOptions

SYNTHETIC = "synthetic"  # the category of DoIT's synthetic pool (its rows carry no category of their own)
STUDY_A_CAPS = {"ethics": 64, "role_play": 64, "creative_writing": 1000}


class SampleConfig(Section):
    """Up to n instances per training task and m per test task (SPEC §1.3, Study B)."""

    mode: Literal["random", "first"] = Field(
        "random", description="'random': a seeded draw per task (WSD study); 'first': file order (permutations)."
    )
    per_train_task: int | None = Field(None, ge=1, description="Instances kept per training task; null = all.")
    per_test_task: int | None = Field(None, ge=1, description="Instances kept per test task; null = all.")


class Recipe(Section):
    """How many training examples to take per category (SPEC §1.3, Study A); non-train rows are kept."""

    curated_total: int | Literal["all"] | None = Field(
        None,
        description="Curated examples in total, split evenly over categories; 'all' = every pool; null = none.",
    )
    synthetic: int = Field(0, ge=0, description=f"Examples drawn from the synthetic pool (category '{SYNTHETIC}').")
    caps: dict[str, int] = Field({}, description="Most examples per category; the budget they free goes to the rest.")
    categories: list[str] | None = Field(None, description="Categories to draw from; null = every one present.")
    caps_need_categories: bool = Field(
        True,
        description="A cap on a category the data lacks is an error (a typo); Study A's presets set false, so their "
        "DoIT caps apply to DoIT's abilities and leave other data's categories alone.",
    )

    @field_validator("curated_total", mode="before")
    @classmethod
    def _total_or_all(cls, total: object) -> object:
        # Checked before the union so a wrong value gets one message, not one per union member.
        if total is None or total == "all" or (isinstance(total, int) and not isinstance(total, bool) and total >= 0):
            return total
        raise ValueError(f"expected an integer >= 0, 'all' or null, got {total!r}")

    @field_validator("caps")
    @classmethod
    def _non_negative_caps(cls, caps: dict[str, int]) -> dict[str, int]:
        negative = {category: cap for category, cap in caps.items() if cap < 0}
        if negative:
            raise ValueError(f"caps must be >= 0, got {negative}")
        return caps

    @model_validator(mode="after")
    def _well_formed(self) -> Recipe:
        named = [*self.caps, *(self.categories or [])]
        if SYNTHETIC in named:
            raise ValueError(f"'{SYNTHETIC}' is not a curated category; use the 'synthetic' field for that pool")
        if self.categories is not None and (not self.categories or len(set(self.categories)) != len(self.categories)):
            raise ValueError(f"categories must be a non-empty list without repeats, got {self.categories}")
        if self.curated_total in (None, 0) and self.synthetic == 0:
            raise ValueError("the recipe selects no training examples (no curated_total and synthetic = 0)")
        return self


_SIZED: dict[str, Callable[[int], Recipe]] = {
    "curated": lambda n: Recipe(curated_total=n),
    "synthetic": lambda n: Recipe(synthetic=n),
    "mix": lambda n: Recipe(curated_total="all", caps=dict(STUDY_A_CAPS), synthetic=n, caps_need_categories=False),
}
_FIXED: dict[str, Callable[[], Recipe]] = {
    "baseline": lambda: Recipe(curated_total=10000),
    "reconstruct": lambda: Recipe(curated_total=10000, caps=dict(STUDY_A_CAPS), caps_need_categories=False),
    "maximum": lambda: Recipe(curated_total="all", caps=dict(STUDY_A_CAPS), caps_need_categories=False),
}
RECIPE_NAMES = (*(f"{prefix}-N" for prefix in _SIZED), *_FIXED)
RECIPE_FAMILIES = tuple(_SIZED)  # a grid recipe that takes its N from grid.volume
FIXED_RECIPES = tuple(_FIXED)  # a grid recipe whose size is its own


def grid_recipe_name(recipe: str, volume: int | None) -> str:
    """The preset a grid point names: a family with the point's volume (`curated` + 640 → `curated-640`), or a
    fixed recipe as it is (`reconstruct`, whatever its volume, which planning may not have set yet)."""
    return f"{recipe}-{volume}" if recipe in RECIPE_FAMILIES else recipe


def sized_recipe(recipe: str) -> tuple[str, int] | None:
    """(family, N) of a sized preset written out (`synthetic-40960`), else None."""
    match = re.fullmatch(r"([a-z]+)-([1-9][0-9]*)", recipe)
    if match and match.group(1) in RECIPE_FAMILIES:
        return match.group(1), int(match.group(2))
    return None


def check_grid_recipe(recipe: str) -> str:
    """`recipe` if a grid can name it (a family, a sized preset or a fixed one), else ValueError listing them."""
    if recipe in RECIPE_FAMILIES or recipe in FIXED_RECIPES or sized_recipe(recipe):
        return recipe
    raise ValueError(
        f"unknown grid recipe {recipe!r}: a family sized by grid.volume ({', '.join(RECIPE_FAMILIES)}), one preset "
        f"of a family with its own size (synthetic-40960), or a fixed recipe ({', '.join(FIXED_RECIPES)})"
    )


def named_recipe(name: str) -> Recipe:
    """The preset `name`: curated-N, synthetic-N, mix-N (N >= 1), baseline, reconstruct or maximum."""
    if name in _FIXED:
        return _FIXED[name]()
    match = re.fullmatch(r"([a-z]+)-([1-9][0-9]*)", name)
    if match and match.group(1) in _SIZED:
        return _SIZED[match.group(1)](int(match.group(2)))
    raise ValueError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPE_NAMES)} (N a positive integer)")


class EvalSourceConfig(Section):
    """A second source whose rows are all test examples (e.g. train on ShareGPT, test on NIV2 held-out tasks)."""

    source: str = Field(..., description="A registered data source, e.g. 'niv2'.")
    path: ExpandedPath | None = Field(
        None, description="Local file/folder in the source's layout (~, $VAR expanded), or a hub dataset name."
    )
    hub_config: str | None = Field(None, description="Hub dataset configuration name.")
    options: SourceOptions = Field({}, description="Options of the data source, checked by the source.")
    split: Literal["test", "all"] = Field("test", description="Keep its 'test' rows, or every row as a test row.")


class DataConfig(Section):
    """Where training and test examples come from (SPEC §1)."""

    source: str = Field("builtin", description="A registered data source: 'builtin' (our generator), 'niv2', ….")
    path: ExpandedPath | None = Field(
        None, description="Local file/folder in the source's layout (~, $VAR expanded), or a hub dataset name."
    )
    hub_config: str | None = Field(None, description="Hub dataset configuration name, when `path` is a hub name.")
    options: SourceOptions = Field({}, description="Options of the data source, checked by the source.")
    lenient: bool = Field(False, description="Skip bad rows (and write a report) instead of failing on the first.")
    disjoint_tasks: bool | None = Field(
        None, description="Fail if a task is in both train and test; null = the source's default (zero-shot: yes)."
    )
    test_source: EvalSourceConfig | None = Field(
        None, description="Take the test split from another source (every row of it becomes a test example)."
    )
    sample: SampleConfig | None = Field(None, description="Instances per train/test task (Study B); null = all.")
    recipe: Recipe | None = Field(
        None, description="Training-volume recipe (Study A): a preset name such as 'curated-640', or inline fields."
    )

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe_by_name(cls, recipe: object) -> object:
        # A name becomes its Recipe here, so inline recipes are checked as one model (clear key errors).
        return named_recipe(recipe) if isinstance(recipe, str) else recipe
