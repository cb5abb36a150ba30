"""Study B's per-task test loss (round-robin / cluster / random, or any permutation): one panel per model ×
training data × permutation, one line per test task (mean over seeds, 95% band)."""

from __future__ import annotations

from matplotlib.figure import Figure

from dynamics.report.curves import curves_of, mean_curves, recipe_rank
from dynamics.report.figures import register
from dynamics.report.figures.metric_vs_step import panel_title
from dynamics.report.history import SweepHistory
from dynamics.report.plotting import Panels, draw_mean, qualitative_colour

TASK_PREFIX = "test_loss/task/"


def has_task_losses(history: SweepHistory) -> bool:
    return bool(history.keys_under(TASK_PREFIX))


@register("test_loss_per_task", has_task_losses, f"{TASK_PREFIX}<task>")
def plot_loss_per_task(history: SweepHistory) -> Figure:
    """Each test task's loss vs step under each permutation: whether an order helps some tasks early and others
    late (cluster) or all of them together (round-robin)."""
    tasks = [key.removeprefix(TASK_PREFIX) for key in history.keys_under(TASK_PREFIX)]
    drawn = []  # (panel, task index, mean curve)
    for index, task in enumerate(tasks):
        for cell in mean_curves(curves_of(history, TASK_PREFIX + task)):
            if cell.points:
                drawn.append((f"{panel_title(cell.model, cell.recipe, cell.volume)}, {cell.permutation}", index, cell))
    order = sorted({(c.model, recipe_rank(c.recipe), c.volume, c.permutation, title) for title, _, c in drawn})
    panels = Panels([title for *_, title in order], len({c.permutation for _, _, c in drawn}))
    for title, index, cell in drawn:
        draw_mean(panels.axis(title), cell.steps, cell.points, tasks[index], qualitative_colour(index, len(tasks)))
    return panels.finish("optimizer step", "test loss per task")
