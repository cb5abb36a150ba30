"""Test loss (Study B's headline metric) in the registry, so configs and reports name it like any other."""

from __future__ import annotations

from dynamics.evaluate.metrics import METRICS, Metric

METRICS.add(
    "loss",
    Metric(
        "mean NLL of the reply tokens (+ end token) per item, macro and micro over tasks",
        frozenset({"token_loss"}),
        False,
    ),
)
