"""Every arrangement of both studies, by the name a config's `grid.permutation` uses (SPEC §2).

An arranger sees the whole arrangement input (ids, tasks, embeddings, scores, seed, settings) and returns the
training order and, for TMA, each ordered item's round. Names:

- instance level by WSD: `nft`, `fft`, `rt`;
- task level: `round_robin`, `cluster`, `task_random`; granularity: `coarse_nft`, `coarse_fft`;
- TMA (Test-centric Multi-turn Arrangement): `tma_min`, `tma_max`, `tma_min_max`, `tma_max_min`, `tma_random`;
  a suffix `[i:j]` keeps only rounds i…j-1 (`tma_min[0:5]`, the rounds ablation).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dynamics.arrange.orderings import get_ordering
from dynamics.arrange.similarity import Scores
from dynamics.config import ArrangeConfig


@dataclass(frozen=True)
class Subset:
    """One subset to arrange: N training items against M test points."""

    ids: list[str]
    tasks: list[str]
    train: np.ndarray  # (N, d) float32 embeddings
    test: np.ndarray  # (M, d) float32 embeddings
    seed: int
    settings: ArrangeConfig


@dataclass(frozen=True)
class ArrangeInputs(Subset):
    """A subset with its items' scores."""

    scores: Scores  # AD / MD / WSD of the N items


@dataclass(frozen=True)
class Arranged:
    """Positions into the inputs in training order; `rounds[k]` is the TMA round of the k-th item, if any."""

    permutation: np.ndarray  # (K,) int64, K ≤ N
    rounds: np.ndarray | None = None  # (K,) int32


Arranger = Callable[[ArrangeInputs], Arranged]
# An arrangement that computes the subset's scores itself, in a pass over train it makes anyway (TMA).
ScoredArranger = Callable[[Subset], tuple[Scores, Arranged]]
ARRANGERS: dict[str, Arranger] = {}
SCORED_ARRANGERS: dict[str, ScoredArranger] = {}
_ROUNDS_SUFFIX = re.compile(r"^(?P<base>[a-z_]+)\[(?P<start>\d+):(?P<stop>\d+)\]$")


def register_arranger(name: str) -> Callable[[Arranger], Arranger]:
    def decorate(arranger: Arranger) -> Arranger:
        if name in ARRANGERS:
            raise ValueError(f"an arranger named {name!r} is already registered")
        ARRANGERS[name] = arranger
        return arranger

    return decorate


def _parse(name: str) -> tuple[str, tuple[int, int] | None]:
    """(base name, rounds range or None); ValueError naming the valid names for an unknown one."""
    match = _ROUNDS_SUFFIX.match(name)
    base = match["base"] if match else name
    if base not in ARRANGERS:
        valid = sorted(ARRANGERS)
        close = difflib.get_close_matches(base, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown permutation {name!r}; valid: {', '.join(valid)} (TMA ones take [i:j]){hint}")
    if match is None:
        return base, None
    if base not in SCORED_ARRANGERS:
        raise ValueError(f"permutation {name!r}: a rounds range [i:j] applies only to TMA arrangements")
    start, stop = int(match["start"]), int(match["stop"])
    if start >= stop:
        raise ValueError(f"permutation {name!r}: the rounds range [{start}:{stop}) is empty")
    return base, (start, stop)


def _rounds_of(base: str, suffix: tuple[int, int] | None, settings: ArrangeConfig) -> tuple[int, int] | None:
    """A name's own [i:j] wins over `arrange.tma_rounds`, which applies to every TMA arrangement."""
    if base not in SCORED_ARRANGERS:
        return None
    if suffix is not None:
        return suffix
    return None if settings.tma_rounds is None else (settings.tma_rounds[0], settings.tma_rounds[1])


def get_arranger(name: str) -> Arranger:
    """The arranger for `name` (with an optional `[i:j]` rounds range); ValueError naming valid names otherwise."""
    base, suffix = _parse(name)

    def arrange(inputs: ArrangeInputs) -> Arranged:
        rounds = _rounds_of(base, suffix, inputs.settings)
        arranged = ARRANGERS[base](inputs)
        return arranged if rounds is None else _rounds_range(arranged, *rounds)

    return arrange


def get_scored_arranger(name: str) -> ScoredArranger | None:
    """For a TMA name: an arranger that also returns the subset's scores, read off its first pass.

    None for arrangements that only consume scores. Either way the order is the same as `get_arranger`'s.
    """
    base, suffix = _parse(name)
    if base not in SCORED_ARRANGERS:
        return None

    def arrange(subset: Subset) -> tuple[Scores, Arranged]:
        rounds = _rounds_of(base, suffix, subset.settings)
        scores, arranged = SCORED_ARRANGERS[base](subset)
        return scores, (arranged if rounds is None else _rounds_range(arranged, *rounds))

    return arrange


def _rounds_range(arranged: Arranged, start: int, stop: int) -> Arranged:
    assert arranged.rounds is not None
    keep = (arranged.rounds >= start) & (arranged.rounds < stop)
    return Arranged(arranged.permutation[keep], arranged.rounds[keep])


def _by_wsd(name: str) -> Arranger:
    ordering = get_ordering(name)
    return lambda inputs: Arranged(ordering(inputs.ids, inputs.scores.wsd, inputs.seed))


for _name in ("nft", "fft", "rt"):
    register_arranger(_name)(_by_wsd(_name))


@register_arranger("round_robin")
def _round_robin(inputs: ArrangeInputs) -> Arranged:
    from dynamics.arrange.task_orders import round_robin

    return Arranged(round_robin(inputs.ids, inputs.tasks, inputs.seed))


@register_arranger("cluster")
def _cluster(inputs: ArrangeInputs) -> Arranged:
    from dynamics.arrange.task_orders import cluster

    return Arranged(cluster(inputs.ids, inputs.tasks, inputs.seed))


@register_arranger("task_random")
def _task_random(inputs: ArrangeInputs) -> Arranged:
    from dynamics.arrange.task_orders import task_random

    return Arranged(task_random(inputs.ids, inputs.tasks, inputs.seed))


def _coarse(reverse: bool) -> Arranger:
    def arrange(inputs: ArrangeInputs) -> Arranged:
        from dynamics.arrange.task_orders import coarse_nft

        settings = inputs.settings
        permutation = coarse_nft(
            inputs.ids, inputs.tasks, inputs.train, inputs.test, inputs.seed,
            w_min=settings.w_min, w_avg=settings.w_avg, reverse=reverse,
        )  # fmt: skip
        return Arranged(permutation)

    return arrange


register_arranger("coarse_nft")(_coarse(reverse=False))
register_arranger("coarse_fft")(_coarse(reverse=True))


def _tma(variant: str) -> Arranger:
    def arrange(inputs: ArrangeInputs) -> Arranged:
        from dynamics.arrange.tma import tma_variant

        size = inputs.settings.tma_size or len(inputs.ids)
        result = tma_variant(
            inputs.train, inputs.test, inputs.ids, variant, min(size, len(inputs.ids)), inputs.seed,
            within_round=inputs.settings.tma_within_round,
        )  # fmt: skip
        return Arranged(result.order.astype(np.int64), result.rounds.astype(np.int32))

    return arrange


def _scored_tma(variant: str) -> ScoredArranger:
    def arrange(subset: Subset) -> tuple[Scores, Arranged]:
        from dynamics.arrange.tma import scored_tma_variant

        settings = subset.settings
        size = settings.tma_size or len(subset.ids)
        scores, result = scored_tma_variant(
            subset.train, subset.test, subset.ids, variant, min(size, len(subset.ids)), subset.seed,
            w_min=settings.w_min, w_avg=settings.w_avg, within_round=settings.tma_within_round,
        )  # fmt: skip
        return scores, Arranged(result.order.astype(np.int64), result.rounds.astype(np.int32))

    return arrange


for _variant in ("min", "max", "min_max", "max_min", "random"):
    register_arranger(f"tma_{_variant}")(_tma(_variant))
    SCORED_ARRANGERS[f"tma_{_variant}"] = _scored_tma(_variant)
