"""Every order of both studies (SPEC §2), registered by the name a config's `grid.permutation` uses.

An order sees the items to arrange (ids, tasks, embeddings, seed, settings and the items' AD/MD/WSD scores)
and returns the training order and, for TMA, each ordered item's round. Each module of this package
registers the orders it defines, so a new order is one module (or one entry in one):

- `wsd`: instance level by WSD — `nft`, `fft`, `rt`;
- `task_level`: `round_robin`, `cluster`, `task_random`; granularity: `coarse_nft`, `coarse_fft`;
- `tma_variants`: Test-centric Multi-turn Arrangement — `tma_min`, `tma_max`, `tma_min_max`, `tma_max_min`,
  `tma_random`; an order with rounds also takes a suffix `[i:j]` that keeps rounds i…j-1 (`tma_min[0:5]`).

    permutation("tma_min[0:5]").arrange(inputs)   # Ordered(positions, rounds)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dynamics.arrange.similarity import Scores
from dynamics.config import ArrangeConfig
from dynamics.registry import Registry

_ROUNDS_SUFFIX = re.compile(r"^(?P<base>[a-z_]+)\[(?P<start>\d+):(?P<stop>\d+)\]$")


@dataclass(frozen=True)
class OrderInputs:
    """The items of one arrangement: N training items against M test points."""

    ids: list[str]
    tasks: list[str]
    train: np.ndarray  # (N, d) float32 embeddings
    test: np.ndarray  # (M, d) float32 embeddings
    seed: int
    settings: ArrangeConfig


@dataclass(frozen=True)
class ScoredInputs(OrderInputs):
    """The items with their scores."""

    scores: Scores  # AD / MD / WSD of the N items


@dataclass(frozen=True)
class Ordered:
    """Positions into the inputs in training order; `rounds[k]` is the TMA round of the k-th item, if any."""

    positions: np.ndarray  # (K,) int64, K ≤ N
    rounds: np.ndarray | None = None  # (K,) int32


@dataclass(frozen=True)
class Order:
    """A registered order: how it arranges scored items, and (optionally) how it scores them in its own pass."""

    description: str
    arrange: Callable[[ScoredInputs], Ordered]
    # An order whose pass over train yields the items' AD and MD too (TMA): scores and order in one pass.
    arrange_and_score: Callable[[OrderInputs], tuple[Scores, Ordered]] | None = None
    has_rounds: bool = False


ORDERS: Registry[Order] = Registry("permutation", discover=__name__)


@dataclass(frozen=True)
class Permutation:
    """A `grid.permutation` name, resolved: the order it names and the rounds range its suffix keeps."""

    name: str
    order: Order
    suffix_rounds: tuple[int, int] | None

    def rounds(self, settings: ArrangeConfig) -> tuple[int, int] | None:
        """Rounds to keep: the name's own [i:j] wins over `arrange.tma_rounds` (which applies to every order
        with rounds); None keeps all."""
        if not self.order.has_rounds:
            return None
        if self.suffix_rounds is not None:
            return self.suffix_rounds
        return None if settings.tma_rounds is None else (settings.tma_rounds[0], settings.tma_rounds[1])

    @property
    def scores_itself(self) -> bool:
        return self.order.arrange_and_score is not None

    def arrange(self, inputs: ScoredInputs) -> Ordered:
        return _kept_rounds(self.order.arrange(inputs), self.rounds(inputs.settings))

    def arrange_and_score(self, inputs: OrderInputs) -> tuple[Scores, Ordered]:
        """Scores of the items and their order, from the order's own pass (only when `scores_itself`)."""
        if self.order.arrange_and_score is None:
            raise TypeError(f"permutation {self.name!r} does not score the items itself")
        scores, ordered = self.order.arrange_and_score(inputs)
        return scores, _kept_rounds(ordered, self.rounds(inputs.settings))


def permutation(name: str) -> Permutation:
    """Resolve a `grid.permutation` name (with an optional `[i:j]` rounds range).

    UnknownName (a ValueError) for a name no order has, with the closest known one; ValueError for a range on
    an order without rounds or an empty range.
    """
    match = _ROUNDS_SUFFIX.match(name)
    order = ORDERS.get(match["base"] if match else name)
    if match is None:
        return Permutation(name, order, None)
    if not order.has_rounds:
        raise ValueError(f"permutation {name!r}: a rounds range [i:j] applies only to orders with rounds (TMA)")
    start, stop = int(match["start"]), int(match["stop"])
    if start >= stop:
        raise ValueError(f"permutation {name!r}: the rounds range [{start}:{stop}) is empty")
    return Permutation(name, order, (start, stop))


def _kept_rounds(ordered: Ordered, rounds: tuple[int, int] | None) -> Ordered:
    if rounds is None:
        return ordered
    assert ordered.rounds is not None
    keep = (ordered.rounds >= rounds[0]) & (ordered.rounds < rounds[1])
    return Ordered(ordered.positions[keep], ordered.rounds[keep])
