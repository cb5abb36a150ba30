"""How per-item scores add up across a test set (SPEC §4): per task, per category, macro and micro.

The macro average (mean over tasks of the per-task mean) is the studies' headline: a task with many items does not
outweigh one with few. The micro average (mean over items) sits beside it.
"""

from __future__ import annotations

import torch


def per_task_means(prefix: str, sums: torch.Tensor, tasks: list[str], category_of: dict[str, str]) -> dict[str, float]:
    """`prefix/task/<t>`, `/category/<c>` (mean of its tasks' means), `/macro` and `/micro` from `sums`,
    (tasks, [sum of item scores, item count]) float64 with rows in the order of `tasks`."""
    means = (sums[:, 0] / sums[:, 1]).tolist()
    metrics = {f"{prefix}/task/{task}": mean for task, mean in zip(tasks, means, strict=True)}
    by_category: dict[str, list[float]] = {}
    for task, mean in zip(tasks, means, strict=True):
        by_category.setdefault(category_of[task], []).append(mean)
    metrics |= {f"{prefix}/category/{c}": sum(v) / len(v) for c, v in sorted(by_category.items())}
    metrics[f"{prefix}/macro"] = sum(means) / len(means)
    metrics[f"{prefix}/micro"] = float(sums[:, 0].sum() / sums[:, 1].sum())
    return metrics
