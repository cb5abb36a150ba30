"""The reward-model score of a generated reply (Study B): the model's scalar for "Human: …\n\nAssistant: …"."""

from __future__ import annotations

from dynamics.evaluate.metrics import METRICS, Metric, ScoredReply


def _reward(scored: ScoredReply) -> float:
    if scored.reward is None:
        raise ValueError("the reward metric needs evaluate.reward_model: no reward was computed for this reply")
    return scored.reward


METRICS.add(
    "reward",
    Metric(
        "evaluate.reward_model's score of (raw prompt, reply)",
        frozenset({"generation", "reward_model"}),
        True,
        score=_reward,
    ),
)
