"""The report's figures (SPEC §5), registered by name in `FIGURES`, and the numbers each one draws.

A figure function returns the matplotlib Figure; `drawn_series` reads the plotted lines and bands back off its
artists, so the JSON beside each PNG (and the tests) hold exactly what the picture shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dynamics.registry import Registry  # noqa: E402
from dynamics.report.curves import HEADLINE_METRIC, Curve, mean_curves  # noqa: E402

PERMUTATION_STYLE = {"nft": ("tab:blue", "-"), "rt": ("tab:gray", "--"), "fft": ("tab:red", ":")}
BAND_PREFIX = "95% interval: "

FIGURES: Registry[Callable[[Sequence[Curve]], Figure]] = Registry("figure")


@FIGURES.register("test_loss_vs_step")
def plot_loss_vs_step(curves: Sequence[Curve], metric: str = HEADLINE_METRIC) -> Figure:
    """Test loss vs step: one panel per (model, volume), one line per permutation — the mean over seeds with
    a shaded 95% interval where a cell has more than one seed."""
    models = sorted({c.factors.model for c in curves})
    volumes = sorted({c.factors.volume for c in curves})
    figure, axes = plt.subplots(
        len(models), len(volumes), figsize=(4.2 * len(volumes), 3.2 * len(models)), squeeze=False, sharey=True
    )
    for cell in mean_curves(curves):
        axis = axes[models.index(cell.model)][volumes.index(cell.volume)]
        color, style = PERMUTATION_STYLE.get(cell.permutation, (None, "-"))
        means = [point.mean for point in cell.points]
        label = cell.permutation if cell.seeds == 1 else f"{cell.permutation} (mean of {cell.seeds} seeds)"
        axis.plot(cell.steps, means, color=color, linestyle=style, marker=".", label=label)
        if cell.seeds > 1:
            low = [point.low for point in cell.points]
            high = [point.high for point in cell.points]
            axis.fill_between(cell.steps, low, high, color=color, alpha=0.18, label=f"_{BAND_PREFIX}{label}")
    for row, model in enumerate(models):
        for column, volume in enumerate(volumes):
            axis = axes[row][column]
            axis.set_title(f"{model}, {volume} examples", fontsize=10)
            axis.set_xlabel("optimizer step")
            axis.grid(alpha=0.3)
            if column == 0:
                axis.set_ylabel(metric)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def drawn_series(figure: Figure) -> list[dict]:
    """Every line and band on the figure's panels, read off its artists: panel title, label, x, y (lines) or
    x, low, high (bands, recovered from the shaded polygon's vertices)."""
    series = []
    for axis in figure.axes:
        title = axis.get_title()
        for line in axis.get_lines():
            x, y = line.get_data()
            series.append(
                {"panel": title, "label": line.get_label(), "x": list(map(float, x)), "y": list(map(float, y))}
            )
        for collection in axis.collections:
            if not isinstance(collection, PolyCollection) or not collection.get_label().startswith(f"_{BAND_PREFIX}"):
                continue
            edges: dict[float, list[float]] = {}
            for vx, vy in collection.get_paths()[0].vertices:
                edges.setdefault(float(vx), []).append(float(vy))
            xs = sorted(edges)
            series.append(
                {
                    "panel": title,
                    "label": collection.get_label().removeprefix("_"),
                    "x": xs,
                    "low": [min(edges[x]) for x in xs],
                    "high": [max(edges[x]) for x in xs],
                }
            )
    return series


def save_figure(figure: Figure, path: Path) -> Path:
    """Write the PNG and close the figure (matplotlib keeps every open figure alive otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
