"""Hints for a mistyped name: the one place that says "did you mean …?".

The lowest floor of the package (it imports nothing of ours), so the config schema and every registry give
the same hint in the same words.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: object, known: Iterable[str]) -> str | None:
    """The known name most like `name`, or None when none is close."""
    matches = difflib.get_close_matches(str(name), list(known), n=1)
    return matches[0] if matches else None


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """"; did you mean 'x'? known: a, b, c" — the tail of an error about an unknown `name`."""
    choices = sorted(known)
    close = closest(name, choices)
    hint = f"; did you mean '{close}'?" if close else ""
    return f"{hint} known: {', '.join(choices)}" if choices else f"{hint} (none are known)"
