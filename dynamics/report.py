"""Figures and summaries read back from MLflow (SPEC §5), each figure registered by name in `FIGURES`.

Everything here reads the tracking store, never the trials' memory, so a report can be rebuilt at any time
from the MLflow runs alone (`dynamics report --config …`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mlflow.entities import Run  # noqa: E402

from dynamics.config import TrialFactors  # noqa: E402
from dynamics.registry import Registry  # noqa: E402
from dynamics.tracking import TrackedRun, child_runs  # noqa: E402

HEADLINE_METRIC = "test_loss/macro"
PERMUTATION_STYLE = {"nft": ("tab:blue", "-"), "rt": ("tab:gray", "--"), "fft": ("tab:red", ":")}


@dataclass(frozen=True)
class Curve:
    """One trial's metric history, sorted by step."""

    factors: TrialFactors
    steps: list[int]
    values: list[float]


def read_curves(sweep: TrackedRun, runs: Sequence[Run], metric: str = HEADLINE_METRIC) -> list[Curve]:
    """The metric history of each finished trial."""
    curves = []
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        history = sorted(sweep.client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        factors = TrialFactors.from_params(run.data.params)
        curves.append(Curve(factors, [m.step for m in history], [m.value for m in history]))
    return curves


def early_phase_means(curves: Sequence[Curve]) -> list[dict]:
    """Mean test loss over the evaluations in the first third of training, per volume × model × permutation.

    The studies predict NFT < RT < FFT here; this reports what the runs show, averaged over seeds.
    """
    grouped: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    for curve in curves:
        if not curve.steps:
            continue
        horizon = max(curve.steps) / 3
        early = [value for step, value in zip(curve.steps, curve.values, strict=True) if step <= horizon]
        factors = curve.factors
        grouped[(factors.volume, factors.model, factors.permutation)].append(sum(early) / len(early))
    return [
        {"volume": v, "model": m, "permutation": p, "early_mean_test_loss": sum(x) / len(x), "seeds": len(x)}
        for (v, m, p), x in sorted(grouped.items())
    ]


FIGURES: Registry[Callable[[Sequence[Curve], Path], Path]] = Registry("figure")


@FIGURES.register("test_loss_vs_step")
def plot_curves(curves: Sequence[Curve], path: Path, metric: str = HEADLINE_METRIC) -> Path:
    """Test loss vs step: one panel per (model, volume), one line per permutation (and seed)."""
    models = sorted({c.factors.model for c in curves})
    volumes = sorted({c.factors.volume for c in curves})
    first_seed = min(c.factors.seed for c in curves)
    figure, axes = plt.subplots(
        len(models), len(volumes), figsize=(4.2 * len(volumes), 3.2 * len(models)), squeeze=False, sharey=True
    )
    for curve in sorted(curves, key=lambda c: (c.factors.permutation, c.factors.seed)):
        factors = curve.factors
        axis = axes[models.index(factors.model)][volumes.index(factors.volume)]
        color, style = PERMUTATION_STYLE.get(factors.permutation, (None, "-"))
        label = factors.permutation if factors.seed == first_seed else None
        axis.plot(curve.steps, curve.values, color=color, linestyle=style, marker=".", label=label)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


class NothingToReport(RuntimeError):
    """A sweep without a finished trial: there is no curve to draw."""


def report_sweep(sweep: TrackedRun, out_dir: Path) -> dict:
    """Draw every registered figure and the early-phase table, and log them to the sweep's run."""
    curves = read_curves(sweep, child_runs(sweep))
    if not curves:
        raise NothingToReport(f"sweep run {sweep.run_id} has no finished trials to report")
    figures = {name: draw(curves, out_dir / f"{name}.png") for name, draw in FIGURES}
    summary = {"metric": HEADLINE_METRIC, "early_phase": early_phase_means(curves)}
    summary_path = out_dir / "early_phase.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    for path in [*figures.values(), summary_path]:
        sweep.log_artifact(path)
    return summary | {"figure": str(figures["test_loss_vs_step"]), "figures": {k: str(v) for k, v in figures.items()}}
