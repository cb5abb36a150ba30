"""Drawing primitives every figure shares: a grid of titled panels, a mean over seeds with its 95% band (a whisker
where there is a single x), and `drawn_series`, which reads the numbers back off the artists, so the JSON beside
each PNG (and the tests) hold exactly what the picture shows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402

from dynamics.report.intervals import Interval  # noqa: E402

BAND_PREFIX = "95% interval: "
PERMUTATION_STYLE = {"nft": ("tab:blue", "-"), "rt": ("tab:gray", "--"), "fft": ("tab:red", ":")}
SHARED_LEGEND_FROM = 5  # this many labels, the same in every panel, get one legend beside the panels
MAX_LEGEND = 14  # a panel of 119 per-task lines gets no legend; its lines keep their labels in the JSON
PANEL_SIZE = (4.2, 3.2)  # inches per panel
MAX_COLUMNS = 6  # wider grids wrap onto more rows


def seeds_label(name: str, points: Sequence[Interval]) -> str:
    """`nft`, `nft (mean of 3 seeds)`, or `nft (mean of 2–3 seeds)` where a failed seed left a point short."""
    low, high = min(p.n for p in points), max(p.n for p in points)
    if high == 1:
        return name
    return f"{name} (mean of {high} seeds)" if low == high else f"{name} (mean of {low}–{high} seeds)"


def draw_mean(
    axis: Axes,
    xs: Sequence[float],
    points: Sequence[Interval],
    name: str,
    color: str | None = None,
    linestyle: str = "-",
    marker: str = ".",
) -> str:
    """The mean at each x as a line, and its 95% interval over seeds as a shaded band (a whisker for one x) where
    any point has more than one seed; returns the line's label."""
    label = seeds_label(name, points)
    means = [p.mean for p in points]
    single = len(xs) == 1
    (line,) = axis.plot(xs, means, color=color, linestyle="none" if single else linestyle, marker=marker, label=label)
    if max(p.n for p in points) > 1:
        band = f"_{BAND_PREFIX}{label}"
        if single:
            axis.plot(
                [xs[0], xs[0]], [points[0].low, points[0].high], color=line.get_color(), linewidth=1.5, label=band
            )
        else:
            low, high = [p.low for p in points], [p.high for p in points]
            axis.fill_between(xs, low, high, color=line.get_color(), alpha=0.18, label=band)
    return label


def permutation_style(permutation: str, known: Sequence[str]) -> tuple[str, str]:
    """Colour and line style of a permutation: Study B's three WSD orders fixed, the rest from a colour cycle."""
    if permutation in PERMUTATION_STYLE:
        return PERMUTATION_STYLE[permutation]
    others = [name for name in sorted(known) if name not in PERMUTATION_STYLE]
    return f"C{(others.index(permutation) + 3) % 10}", "-"


def qualitative_colour(index: int, count: int) -> str:
    """The `index`-th of `count` lines' colour: tab10 up to ten lines, tab20 beyond (cycling: 119 NIV2 test
    tasks reuse 20 colours, their labels tell them apart in the JSON)."""
    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return to_hex(palette(index % palette.N))


class Panels:
    """A figure of titled panels laid out row by row, `columns` wide; cells of the grid left over are removed."""

    def __init__(self, titles: Sequence[str], columns: int, sharey: bool = True, legends: bool = True):
        self.titles = list(dict.fromkeys(titles))
        columns = max(1, min(columns, len(self.titles), MAX_COLUMNS))
        self._legends = legends
        rows = max(1, math.ceil(len(self.titles) / columns))
        self.figure, grid = plt.subplots(
            rows, columns, figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows), squeeze=False, sharey=sharey
        )
        flat = list(grid.ravel())
        self._axes = dict(zip(self.titles, flat, strict=False))
        self._columns = columns
        for unused in flat[len(self.titles) :]:
            unused.remove()

    def axis(self, title: str) -> Axes:
        return self._axes[title]

    def finish(self, xlabel: str, ylabel: str, xlabels: Mapping[str, str] | None = None) -> Figure:
        """Titles, axis labels (`xlabels`: a panel's own x label by title), grids and legends; laid out."""
        labelled = {title: axis.get_legend_handles_labels() for title, axis in self._axes.items()}
        label_sets = {tuple(labels) for _, labels in labelled.values()}
        # Many lines named alike in every panel (per-task curves): one legend beside the panels, not over them.
        shared = (
            self._legends and len(label_sets) == 1 and SHARED_LEGEND_FROM <= len(next(iter(label_sets))) <= MAX_LEGEND
        )
        for index, (title, axis) in enumerate(self._axes.items()):
            axis.set_title(title, fontsize=10)
            axis.set_xlabel((xlabels or {}).get(title, xlabel))
            axis.grid(alpha=0.3)
            if index % self._columns == 0:
                axis.set_ylabel(ylabel)
            handles = labelled[title][0]
            if self._legends and not shared and handles and len(handles) <= MAX_LEGEND:
                axis.legend(fontsize=7)
        if shared:
            handles, labels = next(iter(labelled.values()))
            legend = self.figure.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
            self.figure.tight_layout()
            return self._with_room_for(legend)
        self.figure.tight_layout()
        return self.figure

    def _with_room_for(self, legend: Legend) -> Figure:
        """The figure widened so a legend beside the panels is inside it (savefig keeps the figure's size)."""
        self.figure.canvas.draw()
        legend_width = legend.get_window_extent().width / self.figure.dpi + 0.2  # and a margin
        width, height = self.figure.get_size_inches()
        self.figure.set_size_inches(width + legend_width, height)
        self.figure.subplots_adjust(right=width / (width + legend_width))
        legend.set_bbox_to_anchor((width / (width + legend_width), 0.5))
        return self.figure


def drawn_series(figure: Figure) -> list[dict]:
    """Every line and band on the figure's panels, read off its artists: panel title, label, x, y (lines) or
    x, low, high (bands, recovered from the shaded polygon's vertices or the whisker's two ends)."""
    series = []
    band_label = f"_{BAND_PREFIX}"
    for axis in figure.axes:
        title = axis.get_title()
        for line in axis.get_lines():
            x, y = (list(map(float, values)) for values in line.get_data())
            if line.get_label().startswith(band_label):
                record = {"x": [x[0]], "low": [min(y)], "high": [max(y)]}
                series.append({"panel": title, "label": line.get_label().removeprefix("_")} | record)
            else:
                series.append({"panel": title, "label": line.get_label(), "x": x, "y": y})
        for collection in axis.collections:
            if not isinstance(collection, PolyCollection) or not collection.get_label().startswith(band_label):
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
