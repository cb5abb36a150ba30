"""Figures and summaries read back from MLflow (SPEC §5), each figure registered by name in `FIGURES`.

Everything here reads the tracking store, never the trials' memory, so a report can be rebuilt at any time
from the MLflow runs alone (`dynamics report --config …`).
"""

from dynamics.report.curves import HEADLINE_METRIC, Curve, MeanCurve, mean_curves, read_curves
from dynamics.report.early_phase import early_phase_table, format_table
from dynamics.report.figures import FIGURES, drawn_series
from dynamics.report.intervals import Interval, mean_interval
from dynamics.report.sweep_report import NothingToReport, report_sweep

__all__ = [
    "FIGURES",
    "HEADLINE_METRIC",
    "Curve",
    "Interval",
    "MeanCurve",
    "NothingToReport",
    "drawn_series",
    "early_phase_table",
    "format_table",
    "mean_curves",
    "mean_interval",
    "read_curves",
    "report_sweep",
]
