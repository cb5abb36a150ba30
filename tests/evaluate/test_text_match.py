"""Study B's text scores: answer normalisation, exact match, ROUGE (max over references) and the macro average.

Every expected number is worked out by hand in the comment beside it.

Run: `python -m pytest -q tests/evaluate/test_text_match.py`
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dynamics.evaluate.aggregate import per_task_means
from dynamics.evaluate.text_match import exact_match, normalise_answer, rouge


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello,   World! ", "hello world"),
        ("“Café” — naïve…", "café naïve"),  # Unicode quotes, dash and ellipsis are punctuation (P*)
        ("你好，世界。", "你好世界"),  # full-width comma and full stop too
        ("$5 + 3 = 8", "5 3 8"),  # ASCII's symbols ($ + =) go as well, though Unicode files them under S*
        ("© 2024", "© 2024"),  # a non-ASCII symbol is no punctuation
        ("don't\tstop\n\nnow", "dont stop now"),
        ("", ""),
    ],
)
def test_normalise_answer(text: str, expected: str) -> None:
    assert normalise_answer(text) == expected


def test_exact_match_is_100_for_any_matching_reference_after_normalisation() -> None:
    assert exact_match("The Cat.", ["a dog", "the  cat"]) == 100.0
    assert exact_match("cat", ["the cat"]) == 0.0
    assert exact_match("!!", ["?"]) == 100.0  # both normalise to the empty answer


def test_exact_match_and_rouge_need_a_list_of_references() -> None:
    with pytest.raises(ValueError, match="no references"):
        exact_match("x", [])
    with pytest.raises(ValueError, match="no references"):
        rouge("x", [])
    with pytest.raises(TypeError, match="not one string"):
        exact_match("x", "x")


def test_rouge_of_one_reference() -> None:
    # tokens [the, cat, sat] vs [the, cat, ran]: 2 of 3 unigrams shared, LCS "the cat": P = R = F = 2/3
    assert rouge("the cat sat", ["the cat ran"]) == {"rouge1": pytest.approx(200 / 3), "rougeL": pytest.approx(200 / 3)}


def test_rouge_stems_words_longer_than_three_letters() -> None:
    # prediction stems to [run, dog], the reference to [the, dog, run] ("the" and "dog" are too short to stem).
    # ROUGE-1: 2 shared, P = 2/2, R = 2/3, F = 2·(2/3)/(5/3) = 4/5. ROUGE-L: the LCS is one token (order differs),
    # P = 1/2, R = 1/3, F = 2·(1/6)/(5/6) = 2/5.
    assert rouge("running dogs", ["the dog runs"]) == {"rouge1": pytest.approx(80.0), "rougeL": pytest.approx(40.0)}


def test_rouge_takes_each_measure_s_max_over_references_separately() -> None:
    # vs "c b a": ROUGE-1 P = R = 1 -> 100; LCS 1 of 3 -> 100/3.
    # vs "a b x y": 2 shared, P = 2/3, R = 2/4, F = 2·(1/3)/(7/6) = 4/7; LCS "a b" gives the same 4/7.
    # max: ROUGE-1 100 (first reference), ROUGE-L 400/7 (second).
    assert rouge("a b c", ["c b a", "a b x y"]) == {"rouge1": pytest.approx(100.0), "rougeL": pytest.approx(400 / 7)}
    # vs "a dog": nothing shared; vs "the cat sat down": P = 3/3, R = 3/4, F = 2·(3/4)/(7/4) = 6/7 for both.
    assert rouge("the cat sat", ["a dog", "the cat sat down"]) == {
        "rouge1": pytest.approx(600 / 7),
        "rougeL": pytest.approx(600 / 7),
    }


def test_rouge_of_an_empty_or_wordless_reply_is_zero() -> None:
    assert rouge("", ["the cat"]) == {"rouge1": 0.0, "rougeL": 0.0}
    assert rouge("?!", ["the cat"]) == {"rouge1": 0.0, "rougeL": 0.0}


def test_macro_over_tasks_weighs_every_task_once() -> None:
    # task a: (100 + 0 + 0) / 3 = 100/3; task b: 100; macro (100/3 + 100) / 2 = 200/3; micro 200/4 = 50;
    # category x holds only a, y only b
    sums = torch.tensor([[100.0, 3.0], [100.0, 1.0]], dtype=torch.float64)
    metrics = per_task_means("test_rouge_l", sums, ["a", "b"], {"a": "x", "b": "y"})
    assert metrics == {
        "test_rouge_l/task/a": pytest.approx(100 / 3),
        "test_rouge_l/task/b": 100.0,
        "test_rouge_l/category/x": pytest.approx(100 / 3),
        "test_rouge_l/category/y": 100.0,
        "test_rouge_l/macro": pytest.approx(200 / 3),
        "test_rouge_l/micro": 50.0,
    }


@given(st.text())
def test_normalise_answer_is_idempotent(text: str) -> None:
    once = normalise_answer(text)
    assert normalise_answer(once) == once
    assert "  " not in once and once == once.strip()


@given(st.text())
def test_any_answer_matches_itself(text: str) -> None:
    assert exact_match(text, [text]) == 100.0
    assert exact_match(f"  {text}!", [f"{text}."]) == 100.0  # surrounding spaces and punctuation never count
