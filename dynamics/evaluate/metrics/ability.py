"""Study A's per-ability score in the registry: scored item by item by `dynamics.evaluate.ability_scoring`."""

from __future__ import annotations

from dynamics.evaluate.metrics import METRICS, Metric

METRICS.add(
    "ability",
    Metric(
        "percent of each ability's items answered right by its rule (SPEC §4), its chance score, and the mean over "
        "abilities",
        frozenset({"generation", "choice_nll"}),
        True,
        aggregation="abilities",
    ),
)
