"""Checkpoint selection (SPEC §4, Study A: "the checkpoint is selected on valid automatically"): among the steps
a trial evaluated, the one where the configured metric of a named set is best, and the test split's scores
there, which become the trial's result (`selected/step`, `selected/test_…`).

Evaluation runs in the loop at every evaluation step, so the test scores of every candidate step are already
in the run: selecting is reading, not re-evaluating a saved checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dynamics.evaluate.metrics import METRICS


def headline_key(prefix: str, metric: str) -> str:
    """The one number a metric is compared by: its macro mean over tasks, or the mean over abilities."""
    suffix = "overall" if METRICS.get(metric).aggregation == "abilities" else "macro"
    return f"{prefix}_{metric}/{suffix}"


def selected_scores(history: Mapping[str, Sequence[tuple[int, float]]], set_name: str, metric: str) -> dict[str, float]:
    """`selected/step` (best `set_name`'s `metric`; the earliest step on a tie) and every `test_` key's value
    at that step. Only steps where the test split was evaluated too are candidates; none is a ValueError."""
    key = headline_key(set_name, metric)
    if key not in history:
        raise ValueError(f"checkpoint selection: {key} was never evaluated (evaluate.select)")
    tested = {step for test_key, points in history.items() if test_key.startswith("test_") for step, _ in points}
    candidates = [(step, value) for step, value in history[key] if step in tested]
    if not candidates:
        raise ValueError(f"checkpoint selection: no step evaluated both {key} and the test split")
    sign = -1.0 if METRICS.get(metric).higher_is_better else 1.0
    best_step, _ = min(candidates, key=lambda point: (sign * point[1], point[0]))
    selected = {"selected/step": float(best_step), f"selected/{key}": dict(history[key])[best_step]}
    for test_key, points in history.items():
        if test_key.startswith("test_"):
            at_step = dict(points)
            if best_step in at_step:
                selected[f"selected/{test_key}"] = at_step[best_step]
    return selected
