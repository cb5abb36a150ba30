"""The early-phase table: Study B's claim (NFT < RT < FFT early in training) as numbers with intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence

from dynamics.report.curves import Curve, by_cell, data_label
from dynamics.report.intervals import mean_interval

EARLY_FRACTION = 1 / 3


def early_mean(curve: Curve) -> float | None:
    """Mean of a trial's evaluations in the first third of its steps (step 0 included); None without any."""
    if not curve.steps:
        return None
    horizon = max(curve.steps) * EARLY_FRACTION
    early = [value for step, value in zip(curve.steps, curve.values, strict=True) if step <= horizon]
    return math.fsum(early) / len(early)


def early_phase_table(curves: Sequence[Curve]) -> list[dict]:
    """Per cell (recipe × volume × model × permutation): each seed's early-phase mean test loss, and their
    mean ± 95% interval.

    This reports what the runs show; a cell whose interval overlaps another's does not order them.
    """
    rows = []
    for cell, group in by_cell(curves).items():
        per_seed = {c.factors.seed: early_mean(c) for c in group}
        measured = [value for value in per_seed.values() if value is not None]
        if not measured:
            continue
        interval = mean_interval(measured)
        rows.append(
            cell._asdict()
            | interval.as_record("early_mean_test_loss")
            | {"per_seed": {str(seed): value for seed, value in per_seed.items() if value is not None}}
        )
    return rows


def format_table(rows: Sequence[dict]) -> list[str]:
    """The table as terminal lines: `data model permutation: mean ± half-width (n seeds)`."""
    lines = []
    for row in rows:
        low, high = row["early_mean_test_loss_ci95_low"], row["early_mean_test_loss_ci95_high"]
        spread = "" if low is None else f" ± {(high - low) / 2:.4f} (95% CI [{low:.4f}, {high:.4f}])"
        lines.append(
            f"{data_label(row.get('recipe'), row['volume'])} model={row['model']} perm={row['permutation']}: "
            f"{row['early_mean_test_loss']:.4f}{spread} over {row['seeds']} seed{'s' if row['seeds'] != 1 else ''}"
        )
    return lines
