"""The TMA orders of Study B (`dynamics.arrange.tma`): `tma_min`, `tma_max`, `tma_min_max`, `tma_max_min`,
`tma_random`, each with its round ids, and each able to read the items' AD/MD off its own first pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dynamics.arrange.orders import ORDERS, Order, Ordered, OrderInputs, ScoredInputs
from dynamics.arrange.similarity import Scores
from dynamics.arrange.tma import TmaResult, Variant, scored_tma_variant, tma_variant

DESCRIPTIONS: dict[Variant, str] = {
    "min": "TMA: every test point claims its nearest untaken item, round by round",
    "max": "TMA: every test point claims its farthest untaken item, round by round",
    "min_max": "TMA: nearest rounds to K/2, then the reversed farthest K/2",
    "max_min": "TMA: farthest rounds to K/2, then the reversed nearest K/2",
    "random": "TMA: a seeded shuffle of the min_max pool",
}


def _size(inputs: OrderInputs) -> int:
    """K: `arrange.tma_size`, or every item; never more items than there are."""
    return min(inputs.settings.tma_size or len(inputs.ids), len(inputs.ids))


def _ordered(result: TmaResult) -> Ordered:
    return Ordered(result.order.astype(np.int64), result.rounds.astype(np.int32))


def _arrange(variant: Variant) -> Callable[[ScoredInputs], Ordered]:
    def arrange(inputs: ScoredInputs) -> Ordered:
        result = tma_variant(
            inputs.train, inputs.test, inputs.ids, variant, _size(inputs), inputs.seed,
            within_round=inputs.settings.tma_within_round,
        )  # fmt: skip
        return _ordered(result)

    return arrange


def _arrange_and_score(variant: Variant) -> Callable[[OrderInputs], tuple[Scores, Ordered]]:
    def arrange(inputs: OrderInputs) -> tuple[Scores, Ordered]:
        settings = inputs.settings
        scores, result = scored_tma_variant(
            inputs.train, inputs.test, inputs.ids, variant, _size(inputs), inputs.seed,
            w_min=settings.w_min, w_avg=settings.w_avg, within_round=settings.tma_within_round,
        )  # fmt: skip
        return scores, _ordered(result)

    return arrange


for _variant, _description in DESCRIPTIONS.items():
    ORDERS.add(
        f"tma_{_variant}",
        Order(_description, _arrange(_variant), _arrange_and_score(_variant), has_rounds=True),
    )
