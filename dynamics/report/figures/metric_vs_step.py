"""Study B's curves: test loss and every generation metric present (ROUGE-1, ROUGE-L, exact match, reward) vs
optimizer step, one panel per model × training data, one line per permutation (mean over seeds, 95% band)."""

from __future__ import annotations

from functools import partial

from matplotlib.figure import Figure

from dynamics.config import FIXED_RECIPES
from dynamics.report.curves import HEADLINE_METRIC, curves_of, data_label, mean_curves, recipe_rank
from dynamics.report.figures import register
from dynamics.report.history import SweepHistory
from dynamics.report.plotting import Panels, draw_mean, permutation_style

GENERATION_METRICS = ("rouge1", "rouge_l", "exact_match", "reward")  # logged as test_<name>/macro


def panel_title(model: str, recipe: str | None, volume: int) -> str:
    return f"{model}, {data_label(recipe, volume)}"


def panel_columns(history: SweepHistory) -> int:
    """One column per volume of the plain or family-sized trials (fixed recipes wrap onto the next rows)."""
    return len({t.factors.volume for t in history.trials if t.factors.recipe not in FIXED_RECIPES}) or 1


def plot_metric_vs_step(history: SweepHistory, metric: str = HEADLINE_METRIC) -> Figure:
    """`metric` vs step: one panel per (model, training data), one line per permutation — the mean over seeds
    with a shaded 95% interval where a cell has more than one seed."""
    means = [cell for cell in mean_curves(curves_of(history, metric)) if cell.points]
    keys = sorted({(c.model, recipe_rank(c.recipe), c.volume, c.recipe) for c in means})
    panels = Panels([panel_title(model, recipe, volume) for model, _, volume, recipe in keys], panel_columns(history))
    permutations = sorted({c.permutation for c in means})
    for cell in means:
        color, style = permutation_style(cell.permutation, permutations)
        axis = panels.axis(panel_title(cell.model, cell.recipe, cell.volume))
        draw_mean(axis, cell.steps, cell.points, cell.permutation, color, style)
    return panels.finish("optimizer step", metric)


register("test_loss_vs_step", lambda history: history.has(HEADLINE_METRIC), HEADLINE_METRIC)(plot_metric_vs_step)

for _name in GENERATION_METRICS:
    _key = f"test_{_name}/macro"
    register(f"test_{_name}_vs_step", partial(SweepHistory.has, key=_key), _key)(
        partial(plot_metric_vs_step, metric=_key)
    )
