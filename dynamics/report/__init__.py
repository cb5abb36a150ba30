"""Figures and summaries read back from MLflow (SPEC §5), each figure registered by name in `FIGURES` with the
condition under which a sweep's runs allow it.

Everything here reads the tracking store, never the trials' memory, so a report can be rebuilt at any time
from the MLflow runs alone (`dynamics report <sweep>`).
"""

from dynamics.report.curves import HEADLINE_METRIC, Cell, Curve, MeanCurve, curves_of, mean_curves, read_curves
from dynamics.report.early_phase import early_phase_table, format_table
from dynamics.report.figures import FIGURES, applicable_figures, drawn_series
from dynamics.report.growth_pace import fit_growth, format_growth_pace, growth_pace_table
from dynamics.report.history import SweepHistory
from dynamics.report.intervals import Interval, mean_interval
from dynamics.report.sweep_report import NothingToReport, report_lines, report_sweep

__all__ = [
    "FIGURES",
    "HEADLINE_METRIC",
    "Cell",
    "Curve",
    "Interval",
    "MeanCurve",
    "NothingToReport",
    "SweepHistory",
    "applicable_figures",
    "curves_of",
    "drawn_series",
    "early_phase_table",
    "fit_growth",
    "format_growth_pace",
    "format_table",
    "growth_pace_table",
    "mean_curves",
    "mean_interval",
    "read_curves",
    "report_lines",
    "report_sweep",
]
