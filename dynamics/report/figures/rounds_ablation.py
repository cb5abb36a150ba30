"""Study B's rounds ablation: trials trained on TMA rounds [i, i+w) only (`tma_min[0:5]`, `tma_min[5:10]` …). Per
model × training data: the test loss at the final step and its mean over steps vs the window start i, one line per
base order (and width), and each base order's curves, one line per window; mean over seeds with 95% bands."""

from __future__ import annotations

import math
from collections import defaultdict

from matplotlib.figure import Figure

from dynamics.report.curves import HEADLINE_METRIC, Cell, by_cell, curves_of, mean_curve, recipe_rank
from dynamics.report.figures import register
from dynamics.report.figures.metric_vs_step import panel_title
from dynamics.report.history import SweepHistory
from dynamics.report.intervals import mean_interval
from dynamics.report.permutations import rounds_window
from dynamics.report.plotting import Panels, draw_mean, qualitative_colour

SUMMARIES = {"final step": lambda values: values[-1], "mean over steps": lambda values: math.fsum(values) / len(values)}


def has_windows(history: SweepHistory) -> bool:
    return any(rounds_window(t.factors.permutation) for t in history.logging(HEADLINE_METRIC))


@register("rounds_ablation", has_windows, HEADLINE_METRIC)
def plot_rounds_ablation(history: SweepHistory) -> Figure:
    """Whether the nearest rounds teach most: the test loss of each rounds window, by where the window starts."""
    cells = {cell: group for cell, group in by_cell(curves_of(history)).items() if rounds_window(cell.permutation)}
    # panel prefix (model, training data) → (base order, width) → [(window start, cell)]
    lines: dict[tuple, dict[tuple[str, int], list[tuple[int, Cell]]]] = defaultdict(lambda: defaultdict(list))
    windowed = [(window, cell) for cell in cells if (window := rounds_window(cell.permutation)) is not None]
    for window, cell in sorted(windowed, key=lambda item: item[0].start):  # each line's windows by start
        prefix = (cell.model, recipe_rank(cell.recipe), cell.volume, panel_title(cell.model, cell.recipe, cell.volume))
        lines[prefix][(window.base, window.width)].append((window.start, cell))
    ordered = [(key[-1], lines[key]) for key in sorted(lines)]
    titles = [f"{prefix}: {summary}" for prefix, _ in ordered for summary in SUMMARIES]
    titles += [f"{prefix}: {base} rounds [i, i+{width})" for prefix, bases in ordered for base, width in sorted(bases)]
    xlabels = {
        f"{prefix}: {summary}": "first round of the window (i)" for prefix, _ in ordered for summary in SUMMARIES
    }
    panels = Panels(titles, 2 + max(len(bases) for _, bases in ordered), sharey=False)
    for prefix, bases in ordered:
        for number, ((base, width), windows) in enumerate(sorted(bases.items())):
            starts = [start for start, _ in windows]
            colour = qualitative_colour(number, len(bases))
            for summary, reduce in SUMMARIES.items():
                per_window = [mean_interval([reduce(curve.values) for curve in cells[cell]]) for _, cell in windows]
                draw_mean(panels.axis(f"{prefix}: {summary}"), starts, per_window, f"{base}, {width} rounds", colour)
            axis = panels.axis(f"{prefix}: {base} rounds [i, i+{width})")
            for index, (start, cell) in enumerate(windows):
                curve = mean_curve(cell, cells[cell])
                if curve.points:
                    colour = qualitative_colour(index, len(windows))
                    draw_mean(axis, curve.steps, curve.points, f"[{start}, {start + width})", colour)
        every_start = sorted({start for windows in bases.values() for start, _ in windows})
        for summary in SUMMARIES:
            panels.axis(f"{prefix}: {summary}").set_xticks(every_start)
    return panels.finish("optimizer step", HEADLINE_METRIC, xlabels)
