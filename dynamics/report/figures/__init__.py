"""The report's figures (SPEC §5), registered by name in `FIGURES`. Each entry says when it applies — from the
factors and metric keys a sweep's finished runs hold — and draws itself from the sweep's history, so a report draws
exactly the figures its sweep allows. The modules of this package register their figures when first looked up.

    for name, entry in applicable_figures(history):
        figure = entry.draw(history)        # a matplotlib Figure; drawn_series(figure) holds its numbers
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.figure import Figure

from dynamics.registry import Registry
from dynamics.report.history import SweepHistory
from dynamics.report.plotting import drawn_series, save_figure


@dataclass(frozen=True)
class FigureEntry:
    """A registered figure: when it applies, how it is drawn, and what its y values are (for its JSON)."""

    applies: Callable[[SweepHistory], bool]
    draw: Callable[[SweepHistory], Figure]
    metric: str


FIGURES: Registry[FigureEntry] = Registry("figure", discover=__name__)


def register(
    name: str, applies: Callable[[SweepHistory], bool], metric: str
) -> Callable[[Callable[[SweepHistory], Figure]], Callable[[SweepHistory], Figure]]:
    """Decorator: register the decorated draw function as figure `name`, drawn where `applies` says so."""

    def decorate(draw: Callable[[SweepHistory], Figure]) -> Callable[[SweepHistory], Figure]:
        FIGURES.add(name, FigureEntry(applies, draw, metric))
        return draw

    return decorate


def applicable_figures(history: SweepHistory) -> list[tuple[str, FigureEntry]]:
    """The registered figures this sweep's runs allow, by name."""
    return [(name, entry) for name, entry in FIGURES if entry.applies(history)]


__all__ = ["FIGURES", "FigureEntry", "applicable_figures", "drawn_series", "register", "save_figure"]
