"""Metrics by name (the names a config's `evaluate.in_loop` lists), each saying what it needs and how it adds up.

A metric declares its needs (token losses, generated replies, a reward model, choice likelihoods), its
aggregation (macro over tasks with the micro mean beside it, or per ability with the overall mean over
abilities) and whether higher is better, so the planning step can check a config before any training and the
in-loop runner can serve every metric of a group from one decoding pass. Each module of this package
registers its own; a new metric never means editing a list elsewhere.

    METRICS.get("rouge_l").score(scored_reply)   # 0–100
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dynamics.registry import Registry

if TYPE_CHECKING:  # the registry is read by planning, which must not pay for torch
    from dynamics.evaluate.generation import Generated

Need = Literal["token_loss", "generation", "reward_model", "choice_nll"]
Aggregation = Literal["tasks", "abilities"]


@dataclass(frozen=True)
class ScoredReply:
    """What a per-item metric sees: the item's references and prompt, the generated reply, its reward."""

    references: list[str]
    prompt: str  # the raw user text the reply answers
    reply: Generated
    reward: float | None = None  # the reward model's score, when a metric of the group needs one


@dataclass(frozen=True)
class Metric:
    """One registered metric."""

    description: str
    needs: frozenset[Need]
    higher_is_better: bool
    aggregation: Aggregation = "tasks"
    score: Callable[[ScoredReply], float] | None = None  # per item; None for loss (scored by its own evaluator)


METRICS: Registry[Metric] = Registry("metric", discover="dynamics.evaluate.metrics")


def needs_of(names: list[str]) -> frozenset[Need]:
    """Everything the metrics `names` need together (UnknownName for a name no metric has)."""
    needs: set[Need] = set()
    for name in names:
        needs |= METRICS.get(name).needs
    return frozenset(needs)
