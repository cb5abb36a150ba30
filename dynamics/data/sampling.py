"""Sampling protocols of SPEC §1.3, declared in the config and applied to the loaded canonical table.

- `sample_per_task` (Study B): up to n rows per training task and m per test task, either a seeded random
  draw or the first rows in file order. The valid split is never sampled.
- `apply_recipe` (Study A): a data-volume recipe over the train split, e.g. `curated-640`, `synthetic-160`,
  `reconstruct`, `maximum`, `mix-2560`. Recipes are data (`Recipe`), and presets are named.

Every random draw is a prefix of one seeded permutation per group (task or ability) of that group's rows
sorted by id, so results never depend on row or file order, and a draw that takes no more rows of any group
is a subset of one that takes more: curated-10 ⊂ curated-40 ⊂ … ⊂ baseline, reconstruct ⊂ maximum ⊂ mix-N,
synthetic-10 ⊂ synthetic-40. Outputs keep the input's row order.

Config: `data: {source: doit, path: …, recipe: curated-640}` or
`data: {…, sample: {mode: random, per_train_task: 20, per_test_task: 5}}`.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dynamics.data.problems import DataError

if TYPE_CHECKING:  # dynamics.config imports this module: no runtime import back
    from dynamics.config import DataConfig

SYNTHETIC = "synthetic"  # category of DoIT's synthetic pool (see dynamics.data.formats.doit)
STUDY_A_CAPS = {"ethics": 64, "role_play": 64, "creative_writing": 1000}


def stable_seed(seed: int, key: str) -> int:
    """A 64-bit seed for one group, the same on every machine and Python run (unlike `hash()`).

    Same derivation as `dynamics.data.volume`, so an ability's permutation is shared by both modules.
    """
    digest = hashlib.sha256(f"{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _drawn(rows: list[int], ids: list[str], seed: int, key: str) -> list[int]:
    """`rows` (table indices of one group) in the seeded order of `key`: sorted by id, then permuted."""
    by_id = sorted(rows, key=ids.__getitem__)
    permutation = np.random.default_rng(stable_seed(seed, key)).permutation(len(by_id))
    return [by_id[i] for i in permutation]


def _groups(table: pa.Table, column: str, split: str) -> dict[str, list[int]]:
    """Row indices of `split`, grouped by `column`, each list in table order."""
    groups: dict[str, list[int]] = {}
    splits = table.column("split").to_pylist()
    for row, (value, row_split) in enumerate(zip(table.column(column).to_pylist(), splits, strict=True)):
        if row_split == split:
            groups.setdefault(value, []).append(row)
    return groups


def _kept(table: pa.Table, keep: list[bool]) -> pa.Table:
    return table.filter(pa.array(keep, type=pa.bool_()))


# --- Study B: instances per task -----------------------------------------------------------------------


class SampleConfig(BaseModel):
    """Up to n instances per training task and m per test task (SPEC §1.3, Study B)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["random", "first"] = Field(
        "random", description="'random': a seeded draw per task (WSD study); 'first': file order (permutations)."
    )
    per_train_task: int | None = Field(None, ge=1, description="Instances kept per training task; null = all.")
    per_test_task: int | None = Field(None, ge=1, description="Instances kept per test task; null = all.")


def sample_per_task(table: pa.Table, config: SampleConfig, seed: int) -> pa.Table:
    """Up to `per_train_task` rows of each train task and `per_test_task` of each test task; valid untouched.

    'first' keeps each task's first rows in table order (loaders keep file order); 'random' keeps a prefix of
    the task's seeded permutation, so a smaller n gives a subset of a larger n.
    """
    ids = table.column("id").to_pylist()
    keep = [split not in ("train", "test") for split in table.column("split").to_pylist()]
    for split, limit in (("train", config.per_train_task), ("test", config.per_test_task)):
        for task, rows in _groups(table, "task", split).items():
            ordered = rows if config.mode == "first" else _drawn(rows, ids, seed, task)
            for row in ordered[:limit]:
                keep[row] = True
    return _kept(table, keep)


# --- Study A: data-volume recipes ----------------------------------------------------------------------


class Recipe(BaseModel):
    """How many training examples to take per ability (SPEC §1.3, Study A); non-train rows are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    curated_total: int | Literal["all"] | None = Field(
        None,
        description="Curated examples in total, split evenly over abilities; 'all' = every pool; null = none.",
    )
    synthetic: int = Field(0, ge=0, description="Examples drawn from the synthetic pool (category 'synthetic').")
    caps: dict[str, int] = Field({}, description="Most examples per ability; the budget they free goes to the rest.")
    abilities: list[str] | None = Field(None, description="Abilities to draw from; null = every one present.")

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
        negative = {ability: cap for ability, cap in caps.items() if cap < 0}
        if negative:
            raise ValueError(f"caps must be >= 0, got {negative}")
        return caps

    @model_validator(mode="after")
    def _well_formed(self) -> Recipe:
        named = [*self.caps, *(self.abilities or [])]
        if SYNTHETIC in named:
            raise ValueError("'synthetic' is not a curated ability; use the 'synthetic' field for that pool")
        if self.abilities is not None and (not self.abilities or len(set(self.abilities)) != len(self.abilities)):
            raise ValueError(f"abilities must be a non-empty list without repeats, got {self.abilities}")
        if self.curated_total in (None, 0) and self.synthetic == 0:
            raise ValueError("the recipe selects no training examples (no curated_total and synthetic = 0)")
        return self


_SIZED: dict[str, Callable[[int], Recipe]] = {
    "curated": lambda n: Recipe(curated_total=n),
    "synthetic": lambda n: Recipe(synthetic=n),
    "mix": lambda n: Recipe(curated_total="all", caps=dict(STUDY_A_CAPS), synthetic=n),
}
_FIXED: dict[str, Callable[[], Recipe]] = {
    "baseline": lambda: Recipe(curated_total=10000),
    "reconstruct": lambda: Recipe(curated_total=10000, caps=dict(STUDY_A_CAPS)),
    "maximum": lambda: Recipe(curated_total="all", caps=dict(STUDY_A_CAPS)),
}
RECIPE_NAMES = (*(f"{prefix}-N" for prefix in _SIZED), *_FIXED)


def named_recipe(name: str) -> Recipe:
    """The preset `name`: curated-N, synthetic-N, mix-N (N >= 1), baseline, reconstruct or maximum."""
    if name in _FIXED:
        return _FIXED[name]()
    match = re.fullmatch(r"([a-z]+)-([1-9][0-9]*)", name)
    if match and match.group(1) in _SIZED:
        return _SIZED[match.group(1)](int(match.group(2)))
    raise ValueError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPE_NAMES)} (N a positive integer)")


def resolve_recipe(recipe: str | Recipe) -> Recipe:
    return named_recipe(recipe) if isinstance(recipe, str) else recipe


def _even_shares(total: int, abilities: list[str], caps: Mapping[str, int]) -> dict[str, int]:
    """`total` split evenly over `abilities`; an ability whose cap is below the even share gets its cap and
    the rest is spread over the others (repeated until no cap binds). The remainder of the integer split
    goes one each to the first abilities by name. Budget beyond the sum of all caps is left unused."""
    shares: dict[str, int] = {}
    open_abilities = sorted(abilities)
    budget = total
    while open_abilities:
        level = budget / len(open_abilities)
        capped = [a for a in open_abilities if a in caps and caps[a] < level]
        if not capped:
            break
        for ability in capped:
            shares[ability] = caps[ability]
            budget -= caps[ability]
        open_abilities = [a for a in open_abilities if a not in capped]
    if open_abilities:
        base, extra = divmod(budget, len(open_abilities))
        shares.update({a: base + (i < extra) for i, a in enumerate(open_abilities)})
    return shares


def recipe_counts(available: Mapping[str, int], recipe: Recipe) -> dict[str, int]:
    """Training rows to take per group (each ability, and 'synthetic'), given the rows `available` per group.

    An ability with fewer rows than its share contributes all it has; its shortfall is not given to other
    abilities (so the total is below the budget), and a warning names it. Requesting synthetic rows when
    none are loaded, an unknown ability, or a cap on an absent ability is an error.
    """
    present = sorted(group for group in available if group != SYNTHETIC)
    wanted: dict[str, int] = {}
    if recipe.curated_total not in (None, 0):
        unknown = sorted(set(recipe.abilities or []) - set(present)) + sorted(set(recipe.caps) - set(present))
        if unknown:
            raise DataError(f"recipe: ability {unknown[0]!r} has no training rows; present: {present}")
        abilities = recipe.abilities or present
        if recipe.curated_total == "all":
            wanted = {a: min(available[a], recipe.caps.get(a, available[a])) for a in abilities}
        else:
            wanted = _even_shares(int(recipe.curated_total), abilities, recipe.caps)  # type: ignore[arg-type]
    if recipe.synthetic:
        if not available.get(SYNTHETIC):
            raise DataError(
                f"recipe asks for {recipe.synthetic} synthetic examples but the train split has no "
                f"'{SYNTHETIC}' rows (DoIT: add 'synthetic/40960' to options.pools)"
            )
        wanted[SYNTHETIC] = recipe.synthetic
    short = {group: (n, available[group]) for group, n in wanted.items() if n > available[group]}
    if short:
        listed = ", ".join(f"{group} {have}/{n}" for group, (n, have) in sorted(short.items()))
        warnings.warn(f"recipe: fewer training rows than asked (taking all of them): {listed}", stacklevel=3)
    return {group: min(n, available[group]) for group, n in wanted.items()}


def apply_recipe(table: pa.Table, recipe: Recipe, seed: int) -> pa.Table:
    """The train rows chosen by `recipe` (a seeded prefix per ability / synthetic pool) plus all other rows."""
    ids = table.column("id").to_pylist()
    groups = _groups(table, "category", "train")
    counts = recipe_counts({group: len(rows) for group, rows in groups.items()}, recipe)
    keep = [split != "train" for split in table.column("split").to_pylist()]
    for group, count in counts.items():
        for row in _drawn(groups[group], ids, seed, group)[:count]:
            keep[row] = True
    return _kept(table, keep)


def apply_sampling(table: pa.Table, config: DataConfig, seed: int) -> pa.Table:
    """`config.sample` then `config.recipe` (each only when set) applied to a loaded canonical table."""
    if config.sample is not None:
        table = sample_per_task(table, config.sample, seed)
    if config.recipe is not None:
        table = apply_recipe(table, resolve_recipe(config.recipe), seed)
    return table
