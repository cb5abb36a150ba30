"""Mean and 95% interval over seeds: what every number and band of a report shows when seeds > 1."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """Mean of `n` replicates and its two-sided Student-t interval; low == high == mean when n == 1 (no spread
    to estimate, so no interval is claimed: `half_width` is None)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float | None:
        return None if self.n < 2 else (self.high - self.low) / 2

    def as_record(self, prefix: str) -> dict[str, float | int | None]:
        return {
            prefix: self.mean,
            f"{prefix}_ci95_low": self.low if self.n > 1 else None,
            f"{prefix}_ci95_high": self.high if self.n > 1 else None,
            "seeds": self.n,
        }


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean ± t(confidence, n-1) · s/√n over independent replicates (seeds): with 3 seeds the t quantile is 4.30,
    not the normal 1.96, which is why a band over few seeds is wide."""
    if not values:
        raise ValueError("no values to average")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, mean, mean, 1)
    spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * spread / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)
