"""What a permutation's name says to the report: a TMA rounds window (`tma_min[5:10]` trains on rounds 5…9 of
`tma_min`), read from the name alone so the report needs no arrangement code."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WINDOW = re.compile(r"^(?P<base>.+)\[(?P<start>\d+):(?P<stop>\d+)\]$")


@dataclass(frozen=True)
class RoundsWindow:
    """Rounds [start, stop) of the order `base`."""

    base: str
    start: int
    stop: int

    @property
    def width(self) -> int:
        return self.stop - self.start


def rounds_window(permutation: str) -> RoundsWindow | None:
    """The window a permutation name carries, or None for a whole order."""
    match = _WINDOW.match(permutation)
    return None if match is None else RoundsWindow(match["base"], int(match["start"]), int(match["stop"]))
