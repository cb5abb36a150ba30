"""Growth pace (Study A: "each ability has its own growth pace"): per model × recipe family × ability, a
saturating curve fitted to score vs log volume, seed by seed, and the volumes at which it covers 50% and 90% of
its rise from the ability's chance level to its fitted plateau, with a 95% interval over seeds — or None and the
reason where the data do not determine them (too few volumes, a flat curve, a rise outside the volumes measured,
no convergence). Nothing is extrapolated past one ×4 step beyond the volumes measured: a curve whose fit reaches 90%
of its rise only beyond that has an unmeasured plateau, so neither of its paces is reported.

The curve: score(v) = chance + (plateau − chance) / (1 + exp(−(ln v − m) / w)), three free parameters, so three
volumes are the least that determine it; v50 = e^m and v90 = e^(m + w·ln 9). The chance level is the floor because
it is the score an ability has with no learning at all (each DoIT item carries its chance score; 0 where none was
logged). Seeds are fitted separately and their ln v50 (ln v90) averaged with a Student-t interval, back-transformed:
a geometric mean and an interval on the multiplicative scale the volume grid is on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from dynamics.report.abilities import AbilityPoint, abilities_of, ability_lines, chance_level, is_fixed
from dynamics.report.history import SweepHistory
from dynamics.report.intervals import Interval, mean_interval

MIN_VOLUMES = 3  # as many as the curve has free parameters
MIN_RISE = 1.0  # percentage points: a curve that moves less than this is flat and has no pace
LOG_MARGIN = math.log(4)  # the midpoint may sit one ×4 grid step beyond the volumes measured, no further
WIDTH_BOUNDS = (0.05, 4.0)  # the logistic's scale in ln(volume): from a step to a rise over ~e^35
AT_BOUND = 1e-3  # a parameter this close (relative to its range) to a bound is where the data pushed it, not a fit
FRACTIONS = {"v50": 0.5, "v90": 0.9}


def rising(log_volume: np.ndarray, plateau: float, midpoint: float, width: float, floor: float) -> np.ndarray:
    """The saturating curve in ln(volume), from `floor` (v → 0) to `plateau` (v → ∞)."""
    return floor + (plateau - floor) / (1.0 + np.exp(-(log_volume - midpoint) / width))


@dataclass(frozen=True)
class SeedFit:
    """One seed's fit: the volumes reaching 50% / 90% of the rise, the fitted parameters, or why there are none."""

    v50: float | None = None
    v90: float | None = None
    plateau: float | None = None
    midpoint_log_volume: float | None = None
    width_log_volume: float | None = None
    rmse: float | None = None
    reason: str | None = None


def fit_growth(volumes: Sequence[int], scores: Sequence[float], floor: float) -> SeedFit:
    """Fit one seed's scores (percent) at `volumes`; `floor` is the ability's chance level."""
    measured = sorted(set(volumes))
    if len(measured) < MIN_VOLUMES:
        return SeedFit(reason=f"fewer than {MIN_VOLUMES} volumes ({len(measured)})")
    x, y = np.log(np.asarray(volumes, dtype=float)), np.asarray(scores, dtype=float)
    span = float(y.max() - y.min())
    if span < MIN_RISE:
        return SeedFit(reason=f"flat: scores span {span:.2f} points over volumes {measured[0]}–{measured[-1]}")
    low_mid, high_mid = math.log(measured[0]) - LOG_MARGIN, math.log(measured[-1]) + LOG_MARGIN
    top = max(100.0, float(y.max()))
    lower, upper = [floor, low_mid, WIDTH_BOUNDS[0]], [top, high_mid, WIDTH_BOUNDS[1]]
    if top <= floor:
        return SeedFit(reason=f"chance level {floor:.2f} leaves no room for a rise")
    plateau0 = min(max(float(y.max()), floor + MIN_RISE), top - 1e-6)

    def curve(log_volume: np.ndarray, plateau: float, midpoint: float, width: float) -> np.ndarray:
        return rising(log_volume, plateau, midpoint, width, floor)

    best: tuple[float, np.ndarray] | None = None
    for midpoint0 in np.linspace(low_mid, high_mid, 7)[1:-1]:  # several starts: the loss has flat valleys
        for width0 in (0.5, 1.5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", OptimizeWarning)  # 3 points, 3 parameters: no covariance
                    params, _ = curve_fit(
                        curve, x, y, p0=[plateau0, midpoint0, width0], bounds=(lower, upper), maxfev=5000
                    )
            except (RuntimeError, ValueError):
                continue
            sse = float(np.sum((curve(x, *params) - y) ** 2))
            if best is None or sse < best[0]:
                best = (sse, params)
    if best is None:
        return SeedFit(reason="no convergence")
    sse, (plateau, midpoint, width) = best
    fitted = {
        "plateau": float(plateau),
        "midpoint_log_volume": float(midpoint),
        "width_log_volume": float(width),
        "rmse": math.sqrt(sse / len(y)),
    }
    problem = _undetermined(float(plateau) - floor, midpoint, width, (low_mid, high_mid), measured)
    if problem is not None:
        return SeedFit(**fitted, reason=problem)
    paces = {name: math.exp(midpoint + width * math.log(q / (1 - q))) for name, q in FRACTIONS.items()}
    limit = measured[-1] * math.exp(LOG_MARGIN)
    if paces["v90"] > limit:  # the plateau is an extrapolation, and with it what "50% of the rise" means
        reason = (
            f"still rising at the largest volume ({measured[-1]}): the fit reaches 90% of its rise only at "
            f"≈ {paces['v90']:.0f} examples, so its plateau is not measured"
        )
        return SeedFit(**fitted, reason=reason)
    return SeedFit(v50=paces["v50"], v90=paces["v90"], **fitted)


def _undetermined(
    rise: float, midpoint: float, width: float, mid_bounds: tuple[float, float], measured: Sequence[int]
) -> str | None:
    """Why a fit's parameters do not place the rise (a flat fit, or one the bounds hold), or None."""
    if rise < MIN_RISE:
        return f"flat: the fitted rise from chance is {rise:.2f} points"
    near = AT_BOUND * (mid_bounds[1] - mid_bounds[0])
    if midpoint - mid_bounds[0] < near:
        return (
            f"at its plateau already at the smallest volume ({measured[0]}): the rise lies below the volumes measured"
        )
    if mid_bounds[1] - midpoint < near:
        return f"still rising at the largest volume ({measured[-1]}): no plateau within the volumes measured"
    width_near = AT_BOUND * (WIDTH_BOUNDS[1] - WIDTH_BOUNDS[0])
    if width - WIDTH_BOUNDS[0] < width_near:
        return "rises more steeply than the volume grid resolves: the midpoint lies anywhere between two volumes"
    if WIDTH_BOUNDS[1] - width < width_near:
        return "rises too slowly for a plateau to be placed within the volumes measured"
    return None


def log_interval(values: Sequence[float]) -> Interval:
    """Geometric mean and 95% interval of positive values: the t-interval of their logs, back-transformed."""
    interval = mean_interval([math.log(value) for value in values])
    return Interval(math.exp(interval.mean), math.exp(interval.low), math.exp(interval.high), interval.n)


def pace_record(name: str, values: Sequence[float | None]) -> dict[str, float | int | None]:
    fitted = [value for value in values if value is not None]
    if not fitted:
        return {name: None, f"{name}_ci95_low": None, f"{name}_ci95_high": None, f"{name}_seeds": 0}
    interval = log_interval(fitted)
    spread = interval.n > 1
    return {
        name: interval.mean,
        f"{name}_ci95_low": interval.low if spread else None,
        f"{name}_ci95_high": interval.high if spread else None,
        f"{name}_seeds": interval.n,
    }


def _reason(fits: dict[int, SeedFit]) -> str | None:
    reasons = {seed: fit.reason for seed, fit in fits.items() if fit.reason is not None}
    if not reasons:
        return None
    if len(set(reasons.values())) == 1 and len(reasons) == len(fits):
        return next(iter(reasons.values()))
    return "; ".join(f"seed {seed}: {reason}" for seed, reason in sorted(reasons.items()))


def pace_row(points: Sequence[AbilityPoint], floor: float) -> dict:
    """One line's growth pace: each seed fitted on the volumes it has, then v50 / v90 over the seeds."""
    first = points[0]
    seeds = sorted(set().union(*(point.per_seed for point in points)))
    fits = {}
    for seed in seeds:
        pairs = [(point.volume, point.per_seed[seed]) for point in points if seed in point.per_seed]
        fits[seed] = fit_growth([v for v, _ in pairs], [s for _, s in pairs], floor)
    return (
        {"ability": first.ability, "model": first.model, "recipe": first.recipe, "permutation": first.permutation}
        | {"chance": floor, "volumes": sorted({point.volume for point in points})}
        | pace_record("v50", [fit.v50 for fit in fits.values()])
        | pace_record("v90", [fit.v90 for fit in fits.values()])
        | {"reason": _reason(fits), "per_seed": {str(seed): asdict(fit) for seed, fit in fits.items()}}
    )


def growth_pace_table(history: SweepHistory) -> list[dict]:
    """Per ability × model × recipe family × permutation (fixed recipes are single points, not fitted)."""
    rows = []
    for ability in abilities_of(history):
        floor = chance_level(history, ability) or 0.0
        lines = ability_lines(history, ability)
        rows += [pace_row(points, floor) for (_, recipe, _), points in lines.items() if not is_fixed(recipe)]
    return rows


def format_growth_pace(rows: Sequence[dict]) -> list[str]:
    """The table as terminal lines: `model recipe ability: v50 ≈ … [low, high] · v90 ≈ … (n seeds)`."""

    def pace(row: dict, name: str) -> str:
        if row[name] is None:
            return f"{name} —"
        spread = (
            ""
            if row[f"{name}_ci95_low"] is None
            else f" [{row[f'{name}_ci95_low']:.0f}, {row[f'{name}_ci95_high']:.0f}]"
        )
        return (
            f"{name} ≈ {row[name]:.0f}{spread} ({row[f'{name}_seeds']} seed{'s' if row[f'{name}_seeds'] != 1 else ''})"
        )

    lines = []
    for row in rows:
        head = f"{row['model']} {row['recipe'] or 'nested'} perm={row['permutation']} {row['ability']}"
        note = "" if row["reason"] is None else f" — {row['reason']}"
        lines.append(f"{head}: {pace(row, 'v50')} · {pace(row, 'v90')}{note}")
    return lines
