"""Math answers (Study A's `math` ability, SPEC §4): the last boxed answer of a reply, compared MATH-style.

Normalisation follows the rules of the MATH benchmark's `strip_string` (Hendrycks et al., 2021), so that
`\\dfrac12`, `\\frac{1}{2}` and `1/2` are one answer; beyond it, answers that are exact rational numbers
compare by value (`0.5` equals `\\frac{1}{2}`), and lists of answers (every root of an equation) compare
in any order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

_BOXED = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_SHORT_VARIABLE = re.compile(r"[A-Za-z](?:_?[A-Za-z0-9])?")
_INTEGER_RATIO = re.compile(r"(-?)(\d+)/(\d+)")
_DECIMAL = r"\d+(?:\.\d*)?|\.\d+"
_NUMBER = re.compile(rf"-?(?:{_DECIMAL})")
_FRACTION = re.compile(rf"(-?)\\frac\{{(-?(?:{_DECIMAL}))\}}\{{(-?(?:{_DECIMAL}))\}}")
_OPENING, _CLOSING = "([{", ")]}"


def _group(text: str, start: int) -> int | None:
    """End (exclusive) of the brace group opening at `text[start] == "{"`, or None when it never closes.

    Escaped braces (`\\{`, `\\}`, LaTeX's literal braces) are content, not structure.
    """
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{…}` or `\\fbox{…}` (or `\\boxed 5`) in `text`; None when there is none
    or its brace never closes (a reply cut off mid-answer has not given one)."""
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    rest = matches[-1].end()
    if rest < len(text) and text[rest] == "{":
        end = _group(text, rest)
        return None if end is None else text[rest + 1 : end - 1]
    bare = re.match(r"[ \t]+([^\s$]+)", text[rest:])  # `\boxed 5`: one argument up to a space or `$`
    return bare.group(1) if bare else None


def _argument(text: str, start: int) -> tuple[str, int] | None:
    """A LaTeX macro's argument at `start`: a brace group's content, a macro name or one character; None past
    the end (or an unclosed group)."""
    if start >= len(text):
        return None
    if text[start] == "{":
        end = _group(text, start)
        return None if end is None else (text[start + 1 : end - 1], end)
    command = re.match(r"\\[A-Za-z]+", text[start:])  # `\frac\pi2`: a macro is one argument
    end = start + (command.end() if command else 1)
    return text[start:end], end


def _fix_macro(text: str, macro: str, arity: int) -> str:
    r"""Every argument of `macro` braced: `\frac12` → `\frac{1}{2}`, `\frac1{72}` → `\frac{1}{72}`, `\sqrt2` →
    `\sqrt{2}`. A macro whose arguments run past the end of the text, or (for `\sqrt`) an optional `[n]`, is left alone.
    """
    pieces, index = [], 0
    while (found := text.find(macro, index)) >= 0:
        after = found + len(macro)
        if after < len(text) and text[after].isalpha():  # another macro sharing the prefix (`\fracture`)
            pieces.append(text[index:after])
            index = after
            continue
        arguments, cursor = [], after
        for _ in range(arity):
            argument = None if cursor < len(text) and text[cursor] == "[" else _argument(text, cursor)
            if argument is None:
                break
            arguments.append(argument[0])
            cursor = argument[1]
        pieces.append(text[index:after])
        if len(arguments) == arity:
            pieces.append("".join("{" + argument + "}" for argument in arguments))
            index = cursor
        else:
            index = after
    pieces.append(text[index:])
    return "".join(pieces)


def normalise_math(answer: str) -> str:
    r"""A MATH-style canonical form: no spacing, `\left`/`\right`, degrees, dollars, percent signs or units;
    `\dfrac`/`\tfrac` as `\frac`, braced macro arguments, `a/b` as `\frac{a}{b}`, `0.5` not `.5`, and `x = 5` as `5`.
    """
    text = answer.replace("\n", "").replace("\\!", "")
    text = text.replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "")
    text = text.replace("\\$", "").replace("$", "")
    # Units follow the number in `\text{ cm}` (the space is what tells them from a word answer like `\text{odd}`).
    for units in ("\\text{ ", "\\mbox{ "):
        text = text.split(units, 1)[0]
    text = text.replace("\\%", "").replace("%", "")
    text = text.replace("{,}", "")  # LaTeX's thousands separator: 1{,}000 is 1000
    for spacing in ("\\ ", "\\,", "\\;", "\\:"):
        text = text.replace(spacing, "")
    text = "".join(text.split()).rstrip(".")
    text = re.sub(r"(?<!\d)\.(?=\d)", "0.", text)
    left, equals, right = text.partition("=")
    if equals and "=" not in right and _SHORT_VARIABLE.fullmatch(left):
        text = right
    text = _fix_macro(_fix_macro(text, "\\sqrt", 1), "\\frac", 2)
    ratio = _INTEGER_RATIO.fullmatch(text)
    if ratio:
        text = f"{ratio.group(1)}\\frac{{{ratio.group(2)}}}{{{ratio.group(3)}}}"
    return re.sub(r"\\frac\{-(\d+)\}\{(\d+)\}", r"-\\frac{\1}{\2}", text)


def _rational(normalised: str) -> Fraction | None:
    """The exact value of a normalised integer, decimal or numeric `\\frac`, else None."""
    if _NUMBER.fullmatch(normalised):
        return Fraction(normalised)
    fraction = _FRACTION.fullmatch(normalised)
    if fraction:
        sign, numerator, denominator = fraction.groups()
        if Fraction(denominator) == 0:
            return None
        value = Fraction(numerator) / Fraction(denominator)
        return -value if sign else value
    return None


def _top_level_items(normalised: str) -> list[str]:
    """`normalised` split at commas outside any bracket: `1,-2` → two answers, `(1,2)` → one (a point)."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(normalised):
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth -= 1
        elif char == "," and depth == 0:
            items.append(normalised[start:index])
            start = index + 1
    items.append(normalised[start:])
    return items


def _same_answer(prediction: str, gold: str) -> bool:
    if prediction == gold:
        return True
    value, gold_value = _rational(prediction), _rational(gold)
    return value is not None and value == gold_value


def _same_in_any_order(predicted: list[str], gold: list[str], same: Callable[[str, str], bool]) -> bool:
    # Sameness is an equivalence (equal text or equal value), so a greedy pairing finds a match if one exists.
    unmatched = list(gold)
    for item in predicted:
        partner = next((index for index, candidate in enumerate(unmatched) if same(item, candidate)), None)
        if partner is None:
            return False
        unmatched.pop(partner)
    return not unmatched


def math_equal(prediction: str | None, gold: str) -> bool:
    """Whether `prediction` is `gold`: equal after normalise_math, equal as exact rationals, or the same list of
    answers in another order. No prediction (None) is never equal."""
    if prediction is None:
        return False
    predicted, expected = normalise_math(prediction), normalise_math(gold)
    if _same_answer(predicted, expected):
        return True
    predicted_items, expected_items = _top_level_items(predicted), _top_level_items(expected)
    if len(expected_items) < 2 or len(predicted_items) != len(expected_items):
        return False
    return _same_in_any_order(predicted_items, expected_items, _same_answer)
