"""Study A's data-volume recipes (SPEC §1.3) applied to the train split: `curated-640`, `synthetic-160`,
`reconstruct`, `maximum`, `mix-2560` or inline caps (`dynamics.config.Recipe`).

Each category (a DoIT ability) and the synthetic pool draw a prefix of their own seeded permutation, so
curated-10 ⊂ curated-40 ⊂ … ⊂ baseline, reconstruct ⊂ maximum ⊂ mix-N, synthetic-10 ⊂ synthetic-40.

Config: `data: {source: doit, path: …, recipe: curated-640}`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import pyarrow as pa

from dynamics.config import SYNTHETIC, Recipe
from dynamics.data.problems import DataError
from dynamics.data.sampling import groups_of, kept_rows, seeded_rows


def _even_shares(total: int, categories: list[str], caps: Mapping[str, int]) -> dict[str, int]:
    """`total` split evenly over `categories`; a category whose cap is below the even share gets its cap and
    the rest is spread over the others (repeated until no cap binds). The remainder of the integer split
    goes one each to the first categories by name. Budget beyond the sum of all caps is left unused."""
    shares: dict[str, int] = {}
    open_categories = sorted(categories)
    budget = total
    while open_categories:
        level = budget / len(open_categories)
        capped = [a for a in open_categories if a in caps and caps[a] < level]
        if not capped:
            break
        for category in capped:
            shares[category] = caps[category]
            budget -= caps[category]
        open_categories = [a for a in open_categories if a not in capped]
    if open_categories:
        base, extra = divmod(budget, len(open_categories))
        shares.update({a: base + (i < extra) for i, a in enumerate(open_categories)})
    return shares


def available_rows(table: pa.Table) -> dict[str, int]:
    """Training rows per group (each category, and 'synthetic'): what `recipe_counts` draws from."""
    return {group: len(rows) for group, rows in groups_of(table, "category", "train").items()}


def recipe_counts(available: Mapping[str, int], recipe: Recipe) -> dict[str, int]:
    """Training rows to take per group (each category, and 'synthetic'), given the rows `available` per group.

    A category with fewer rows than its share contributes all it has; its shortfall is not given to other
    categories (so the total is below the budget), and a warning names it. Requesting synthetic rows when
    none are loaded, an unknown category, or a cap on an absent category is an error.
    """
    present = sorted(group for group in available if group != SYNTHETIC)
    wanted: dict[str, int] = {}
    if recipe.curated_total not in (None, 0):
        caps = (
            recipe.caps if recipe.caps_need_categories else {a: cap for a, cap in recipe.caps.items() if a in present}
        )
        unknown = sorted(set(recipe.categories or []) - set(present)) + sorted(set(caps) - set(present))
        if unknown:
            raise DataError(f"recipe: category {unknown[0]!r} has no training rows; present: {present}")
        categories = recipe.categories or present
        if recipe.curated_total == "all":
            wanted = {a: min(available[a], caps.get(a, available[a])) for a in categories}
        else:
            wanted = _even_shares(int(recipe.curated_total), categories, caps)  # type: ignore[arg-type]
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
    """The train rows chosen by `recipe` (a seeded prefix per category / synthetic pool) plus all other rows."""
    ids = table.column("id").to_pylist()
    groups = groups_of(table, "category", "train")
    counts = recipe_counts({group: len(rows) for group, rows in groups.items()}, recipe)
    keep = [split != "train" for split in table.column("split").to_pylist()]
    for group, count in counts.items():
        for row in seeded_rows(groups[group], ids, seed, group)[:count]:
            keep[row] = True
    return kept_rows(table, keep)
