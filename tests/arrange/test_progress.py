"""Progress bars: drawn for passes over train only inside `show_progress`, silent otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics.arrange.progress import show_progress
from dynamics.arrange.similarity import score
from dynamics.arrange.tma import scored_tma


@pytest.fixture
def vectors() -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((500, 8)), rng.standard_normal((6, 8)), [f"id{i:03d}" for i in range(500)]


def test_passes_are_silent_by_default(vectors, capsys) -> None:
    train, test, ids = vectors
    score(train, test, chunk_rows=64)
    scored_tma(train, test, ids, max_rounds=3, chunk_rows=64)
    assert capsys.readouterr().err == ""


def test_show_progress_draws_one_bar_per_pass(vectors, capsys) -> None:
    train, test, ids = vectors
    with show_progress():
        score(train, test, chunk_rows=64)
        scoring = capsys.readouterr().err
        scored_tma(train, test, ids, "farthest", max_rounds=3, chunk_rows=64)
        arranging = capsys.readouterr().err
    assert "scores:" in scoring and "/500 " in scoring  # a bar over the 500 training rows
    # The fused pass feeds the scores from TMA's own pass: one bar, no separate scoring bar.
    assert "TMA farthest pass 1:" in arranging and "/500 " in arranging and "scores" not in arranging
