"""One sweep's report: every registered figure (PNG + the numbers it draws) and the early-phase table,
logged to the sweep's parent run."""

from __future__ import annotations

import json
from pathlib import Path

from dynamics.report.curves import HEADLINE_METRIC, read_curves
from dynamics.report.early_phase import early_phase_table
from dynamics.report.figures import FIGURES, drawn_series, save_figure
from dynamics.tracking import TrackedRun, child_runs


class NothingToReport(RuntimeError):
    """A sweep without a finished trial: there is no curve to draw."""


def report_sweep(sweep: TrackedRun, out_dir: Path) -> dict:
    """Draw every registered figure and the early-phase table, and log them to the sweep's run."""
    curves = read_curves(sweep, child_runs(sweep))
    if not curves:
        raise NothingToReport(f"sweep run {sweep.run_id} has no finished trials to report")
    figures: dict[str, Path] = {}
    written: list[Path] = []
    for name, draw in FIGURES:
        figure = draw(curves)
        numbers = out_dir / f"{name}.json"
        numbers.parent.mkdir(parents=True, exist_ok=True)
        numbers.write_text(json.dumps({"metric": HEADLINE_METRIC, "series": drawn_series(figure)}) + "\n")
        figures[name] = save_figure(figure, out_dir / f"{name}.png")
        written += [figures[name], numbers]
    summary = {"metric": HEADLINE_METRIC, "early_phase": early_phase_table(curves)}
    summary_path = out_dir / "early_phase.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    for path in [*written, summary_path]:
        sweep.log_artifact(path)
    return summary | {"figure": str(figures["test_loss_vs_step"]), "figures": {k: str(v) for k, v in figures.items()}}
