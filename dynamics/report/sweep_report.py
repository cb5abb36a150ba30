"""One sweep's report: every figure its runs allow (PNG + the numbers it draws), the early-phase table and, where
abilities were scored over volumes, the growth-pace table; all logged to the sweep's parent run."""

from __future__ import annotations

import json
from pathlib import Path

from dynamics.report.abilities import has_abilities_over_volumes
from dynamics.report.curves import HEADLINE_METRIC, curves_of
from dynamics.report.early_phase import early_phase_table
from dynamics.report.figures import applicable_figures, drawn_series, save_figure
from dynamics.report.growth_pace import format_growth_pace, growth_pace_table
from dynamics.report.history import SweepHistory
from dynamics.tracking import TrackedRun

HEADLINE_FIGURE = "test_loss_vs_step"


class NothingToReport(RuntimeError):
    """A sweep without a finished trial: there is no curve to draw."""


def _write_json(path: Path, record: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def report_sweep(sweep: TrackedRun, out_dir: Path) -> dict:
    """Draw every figure the sweep's factors and metrics allow and its tables, and log them to the sweep's run.

    The summary holds `early_phase`, `growth_pace` (when it applies), `figures` (name → PNG of every figure
    drawn) and `figure` (the headline figure's PNG, else the first drawn; None when none applies).
    """
    history = SweepHistory.read(sweep)
    if not history.trials:
        raise NothingToReport(f"sweep run {sweep.run_id} has no finished trials to report")
    figures: dict[str, Path] = {}
    written: list[Path] = []
    for name, entry in applicable_figures(history):
        figure = entry.draw(history)
        written.append(_write_json(out_dir / f"{name}.json", {"metric": entry.metric, "series": drawn_series(figure)}))
        figures[name] = save_figure(figure, out_dir / f"{name}.png")
        written.append(figures[name])
    summary: dict = {"metric": HEADLINE_METRIC, "early_phase": early_phase_table(curves_of(history))}
    written.append(_write_json(out_dir / "early_phase.json", summary))
    if has_abilities_over_volumes(history):
        summary["growth_pace"] = growth_pace_table(history)
        written.append(_write_json(out_dir / "growth_pace.json", {"growth_pace": summary["growth_pace"]}))
    for path in written:
        sweep.log_artifact(path)
    headline = figures.get(HEADLINE_FIGURE, next(iter(figures.values()), None))
    return summary | {
        "figure": None if headline is None else str(headline),
        "figures": {name: str(path) for name, path in figures.items()},
    }


def report_lines(summary: dict) -> list[str]:
    """What the terminal shows of a report: every PNG, then the growth-pace table when there is one."""
    lines = [f"figure {name}: {path}" for name, path in summary["figures"].items()]
    if "growth_pace" in summary:
        lines.append(
            "growth pace (examples to 50% / 90% of each ability's fitted rise from chance; 95% interval over seeds):"
        )
        lines += [f"  {line}" for line in format_growth_pace(summary["growth_pace"])]
    return lines
