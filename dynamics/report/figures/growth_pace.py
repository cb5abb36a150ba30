"""The growth-pace figure: per model × recipe family, each ability's v50 (circles) and v90 (squares) on a log-4
volume axis, geometric mean over seeds with its 95% interval; an ability without a fitted pace draws no point
(growth_pace.json says why)."""

from __future__ import annotations

from matplotlib.figure import Figure

from dynamics.report.abilities import has_abilities_over_volumes
from dynamics.report.figures import register
from dynamics.report.figures.ability_vs_volume import VOLUME_TICKS
from dynamics.report.growth_pace import growth_pace_table
from dynamics.report.history import SweepHistory
from dynamics.report.intervals import Interval
from dynamics.report.plotting import Panels, draw_mean

MARKERS = {"v50": ("o", "C0", -0.12), "v90": ("s", "C1", 0.12)}  # marker, colour, x offset


def panel_of(row: dict) -> str:
    return f"{row['model']}, {row['recipe'] or 'nested'}, {row['permutation']}"


@register(
    "growth_pace_by_ability", has_abilities_over_volumes, "training examples to reach 50% / 90% of the fitted rise"
)
def plot_growth_pace(history: SweepHistory) -> Figure:
    """Which abilities need little data and which keep needing more: the volumes at 50% and 90% of each rise."""
    rows = growth_pace_table(history)
    panels = Panels(list(dict.fromkeys(panel_of(row) for row in rows)), 2, sharey=False, legends=False)
    for title in panels.titles:
        axis = panels.axis(title)
        mine = [row for row in rows if panel_of(row) == title]
        abilities = list(dict.fromkeys(row["ability"] for row in mine))
        for row in mine:
            if row["v50"] is None and row["v90"] is None:
                where = (abilities.index(row["ability"]), 0.03)
                axis.annotate(
                    "no pace", where, xycoords=("data", "axes fraction"), ha="center", color="gray", fontsize=7
                )
            for name, (marker, colour, offset) in MARKERS.items():
                if row[name] is None:
                    continue
                n, low, high = row[f"{name}_seeds"], row[f"{name}_ci95_low"], row[f"{name}_ci95_high"]
                interval = Interval(
                    row[name], row[name] if low is None else low, row[name] if high is None else high, n
                )
                x = abilities.index(row["ability"]) + offset
                draw_mean(axis, [x], [interval], f"{name}: {row['ability']}", colour, marker=marker)
        axis.set_yscale("log", base=4)
        axis.set_yticks(list(VOLUME_TICKS), list(VOLUME_TICKS.values()))
        axis.minorticks_off()
        axis.set_xticks(range(len(abilities)), abilities, rotation=45, ha="right", fontsize=8)
    return panels.finish("ability (o: v50, □: v90)", "training examples")
