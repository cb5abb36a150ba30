"""Figures and summaries read back from MLflow (SPEC §5): test loss vs step per permutation.

Everything here reads the tracking store, never the trials' memory, so a report can be rebuilt at any time
from the MLflow runs alone (`dynamics report --config …`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mlflow.entities import Run  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from dynamics.tracking import PARENT_TAG  # noqa: E402

HEADLINE_METRIC = "test_loss/macro"
PERMUTATION_STYLE = {"nft": ("tab:blue", "-"), "rt": ("tab:gray", "--"), "fft": ("tab:red", ":")}


@dataclass(frozen=True)
class Curve:
    """One trial's metric history, sorted by step."""

    volume: int
    model: str
    permutation: str
    seed: int
    steps: list[int]
    values: list[float]


def child_runs(client: MlflowClient, parent_run_id: str) -> list[Run]:
    """Trials of a sweep: runs whose parent tag is `parent_run_id`."""
    parent = client.get_run(parent_run_id)
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=10000
    )


def read_curves(client: MlflowClient, runs: Sequence[Run], metric: str = HEADLINE_METRIC) -> list[Curve]:
    """The metric history of each finished trial."""
    curves = []
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        params = run.data.params
        curves.append(
            Curve(
                volume=int(params["volume"]),
                model=params["model"],
                permutation=params["permutation"],
                seed=int(params["seed"]),
                steps=[m.step for m in history],
                values=[m.value for m in history],
            )
        )
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
        grouped[(curve.volume, curve.model, curve.permutation)].append(sum(early) / len(early))
    return [
        {"volume": v, "model": m, "permutation": p, "early_mean_test_loss": sum(x) / len(x), "seeds": len(x)}
        for (v, m, p), x in sorted(grouped.items())
    ]


def plot_curves(curves: Sequence[Curve], path: Path, metric: str = HEADLINE_METRIC) -> Path:
    """One panel per (model, volume), one line per permutation (and seed)."""
    models = sorted({c.model for c in curves})
    volumes = sorted({c.volume for c in curves})
    figure, axes = plt.subplots(
        len(models), len(volumes), figsize=(4.2 * len(volumes), 3.2 * len(models)), squeeze=False, sharey=True
    )
    for curve in sorted(curves, key=lambda c: (c.permutation, c.seed)):
        axis = axes[models.index(curve.model)][volumes.index(curve.volume)]
        color, style = PERMUTATION_STYLE.get(curve.permutation, (None, "-"))
        label = curve.permutation if curve.seed == min(c.seed for c in curves) else None
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


def report_sweep(client: MlflowClient, parent_run_id: str, out_dir: Path) -> dict:
    """Write the loss-vs-step figure and the early-phase table, and log both to the parent run."""
    curves = read_curves(client, child_runs(client, parent_run_id))
    if not curves:
        raise RuntimeError(f"parent run {parent_run_id} has no finished trials to report")
    figure = plot_curves(curves, out_dir / "test_loss_vs_step.png")
    summary = {"metric": HEADLINE_METRIC, "early_phase": early_phase_means(curves)}
    summary_path = out_dir / "early_phase.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    client.log_artifact(parent_run_id, str(figure))
    client.log_artifact(parent_run_id, str(summary_path))
    return summary | {"figure": str(figure)}
