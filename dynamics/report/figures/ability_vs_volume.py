"""Study A's figure: score vs training-set size, one panel per ability plus overall, on a log-4 axis; one colour
per model, line style per recipe family (curated solid, synthetic dashed, mix dash-dot), fixed recipes as single
markers, the ability's chance level dotted; mean over seeds with 95% bands."""

from __future__ import annotations

from matplotlib.figure import Figure

from dynamics.report.abilities import (
    ABILITY_PREFIX,
    abilities_of,
    ability_lines,
    chance_level,
    has_abilities_over_volumes,
    is_fixed,
)
from dynamics.report.figures import register
from dynamics.report.history import SweepHistory
from dynamics.report.plotting import Panels, draw_mean

FAMILY_STYLE = {None: "-", "curated": "-", "synthetic": "--", "mix": "-."}
FIXED_MARKER = {"baseline": "*", "reconstruct": "D", "maximum": "P"}
VOLUME_TICKS = {10: "10", 40: "40", 160: "160", 640: "640", 2560: "2.5k", 10240: "10k", 40960: "41k"}
PANELS_PER_ROW = 4


def line_name(model: str, recipe: str | None, permutation: str, permutations: int) -> str:
    name = f"{model} {recipe or 'nested'}"
    return name if permutations == 1 else f"{name} {permutation}"


@register("ability_vs_volume", has_abilities_over_volumes, f"{ABILITY_PREFIX}<ability> (percent)")
def plot_ability_vs_volume(history: SweepHistory) -> Figure:
    """How each ability grows with data, and whether curated data keeps paying while synthetic data plateaus."""
    abilities = abilities_of(history)
    panels = Panels(abilities, PANELS_PER_ROW)
    models = sorted({t.factors.model for t in history.trials})
    permutations = len({t.factors.permutation for t in history.trials})
    volumes = sorted({t.factors.volume for t in history.trials})
    for ability in abilities:
        axis = panels.axis(ability)
        for (model, recipe, permutation), points in ability_lines(history, ability).items():
            colour = f"C{models.index(model) % 10}"
            name = line_name(model, recipe, permutation, permutations)
            xs, intervals = [p.volume for p in points], [p.interval for p in points]
            if is_fixed(recipe):
                for x, interval in zip(xs, intervals, strict=True):
                    draw_mean(axis, [x], [interval], name, colour, marker=FIXED_MARKER.get(recipe, "o"))
            else:
                draw_mean(axis, xs, intervals, name, colour, FAMILY_STYLE.get(recipe, ":"), marker="o")
        chance = chance_level(history, ability)
        if chance is not None:
            axis.plot([volumes[0], volumes[-1]], [chance, chance], color="black", linestyle=":", label="chance")
        axis.set_xscale("log", base=4)
        ticks = [tick for tick in VOLUME_TICKS if volumes[0] / 2 <= tick <= volumes[-1] * 2]
        axis.set_xticks(ticks, [VOLUME_TICKS[tick] for tick in ticks])
        axis.minorticks_off()
    return panels.finish("training examples", "score (%)")
