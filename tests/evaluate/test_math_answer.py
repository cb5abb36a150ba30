"""Math answers: the last boxed answer of a reply, MATH-style normalisation and equality by value.

Run: `python -m pytest -q tests/evaluate/test_math_answer.py`
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamics.evaluate.math_answer import last_boxed, math_equal, normalise_math


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so the answer is $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),  # nested braces
        (r"first \boxed{1}, then \boxed{2}", "2"),  # the last one
        (r"\boxed{1} or rather \fbox{3}", "3"),  # \fbox after \boxed is the last one too
        (r"$\boxed 5$ apples", "5"),  # no braces: one argument up to `$` or a space
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces are content
        (r"\boxed{}", ""),
        (r"the answer is \boxed{\frac{1}{2", None),  # cut off before the brace closes
        (r"\boxed{3} and then \boxed{\frac{1}", None),  # the last one is unclosed: no answer, not the earlier one
        ("the answer is 5", None),
        (r"\boxedfoo{3}", None),  # another macro
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (r"\frac12", r"\frac{1}{2}"),
        (r"\frac1b", r"\frac{1}{b}"),
        (r"\dfrac1{72}", r"\frac{1}{72}"),
        (r"\tfrac{3}{4}", r"\frac{3}{4}"),
        (r"\frac\pi2", r"\frac{\pi}{2}"),
        (r"\frac 1 2", r"\frac{1}{2}"),
        (r"\sqrt2", r"\sqrt{2}"),
        (r"2\sqrt3", r"2\sqrt{3}"),
        (r"\sqrt[3]{8}", r"\sqrt[3]{8}"),  # an optional argument is left alone
        ("1/2", r"\frac{1}{2}"),
        ("-3/4", r"-\frac{3}{4}"),
        (r"\frac{-1}{2}", r"-\frac{1}{2}"),
        (".5", "0.5"),
        ("-.25", "-0.25"),
        ("x = 5", "5"),
        ("k=-2", "-2"),
        ("x_1 = 3", "3"),
        ("area = 5", "area=5"),  # not a short variable: kept
        (r"10\text{ cm}", "10"),
        (r"90^\circ", "90"),
        (r"90^{\circ}", "90"),
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"\$5.", "5"),
        (r"50\%", "50"),
        (r"1{,}000", "1000"),
        (r"3\!\cdot\!4", r"3\cdot4"),
        ("7.", "7"),
    ],
)
def test_normalise_math(answer: str, expected: str) -> None:
    assert normalise_math(answer) == expected


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        (r"\frac12", r"\frac{1}{2}"),
        ("0.5", r"\frac{1}{2}"),
        (".5", "1/2"),
        (r"\dfrac{1}{2}", "1/2"),
        ("-0.5", r"-\frac{1}{2}"),
        (r"\frac{-1}{2}", "-0.5"),
        ("2.50", "5/2"),
        ("3.0", "3"),
        ("x = 5", "5"),
        (r"10\text{ cm}", "10"),
        (r"\sqrt2", r"\sqrt{2}"),
        (r"\left(1, 2\right)", "(1,2)"),
        ("3, -2", "-2,3"),  # both roots, in another order
        (r"\frac{3}{4}, -\frac{3}{4}", r"-0.75, 0.75"),
    ],
)
def test_equal_answers(prediction: str, gold: str) -> None:
    assert math_equal(prediction, gold)


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        (None, "1"),
        ("", "1"),
        (r"\frac{1}{3}", "0.33"),
        ("(1,2)", "(2,1)"),  # a point is ordered
        ("3", "3, -2"),  # one root of two
        ("3, 3", "3, -2"),
        (r"\frac{1}{0}", "0"),  # no value: compared as text, not a ZeroDivisionError
        (r"\sqrt{2}", "1.414"),
    ],
)
def test_different_answers(prediction: str | None, gold: str) -> None:
    assert not math_equal(prediction, gold)


@given(st.integers(-1000, 1000), st.integers(1, 1000))
def test_a_ratio_equals_its_fraction_and_its_value(numerator: int, denominator: int) -> None:
    fraction = rf"\frac{{{abs(numerator)}}}{{{denominator}}}"
    signed = f"-{fraction}" if numerator < 0 else fraction
    assert math_equal(f"{numerator}/{denominator}", signed)
    if 1000 % denominator == 0:  # the value as a terminating decimal, written by hand: numerator·(1000/d) / 1000
        scaled = abs(numerator) * (1000 // denominator)
        decimal = f"{'-' if numerator < 0 else ''}{scaled // 1000}.{scaled % 1000:03d}"
        assert math_equal(decimal, signed)
