"""Progress bars for passes over the training pool, shown by `dynamics arrange` and silent elsewhere.

Passes deep inside scoring and TMA report rows through `advance`; only a caller that opted in with
`show_progress` (the CLI) gets bars, so library calls, tests and Ray workers print nothing.

    with show_progress():
        build_arrangements(...)  # one bar per pass over train: "scores", "TMA nearest pass 1", …
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_enabled: ContextVar[bool] = ContextVar("dynamics_arrange_progress_enabled", default=False)
_bar: ContextVar[Any] = ContextVar("dynamics_arrange_progress_bar", default=None)


@contextmanager
def show_progress(enabled: bool = True) -> Iterator[None]:
    """Within this block, passes over train draw tqdm bars on stderr."""
    token = _enabled.set(enabled)
    try:
        yield
    finally:
        _enabled.reset(token)


@contextmanager
def pass_progress(description: str, total_rows: int) -> Iterator[None]:
    """One pass over `total_rows` training rows; a bar only inside `show_progress`.

    A pass nested in another (a score pass fed by a TMA pass) reports to the outer bar.
    """
    if not _enabled.get() or _bar.get() is not None:
        yield
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total_rows, desc=description, unit="rows", unit_scale=True, leave=False)
    token = _bar.set(bar)
    try:
        yield
    finally:
        _bar.reset(token)
        bar.close()


def advance(rows: int) -> None:
    """Count `rows` more rows of the current pass (no-op without a bar)."""
    bar = _bar.get()
    if bar is not None:
        bar.update(rows)


def progress_bar(items: list[T], description: str, unit: str) -> Iterable[T]:
    """`items`, with a bar over them inside `show_progress` (e.g. the stage's loop over arrangements)."""
    if not _enabled.get():
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, unit=unit)
