"""Study A's per-ability scoring: which rule scores an item, its chance score, every rule's verdicts on replies
(including cut-off, empty and ambiguous ones), the letter tokens of the logit fallback, and the report.

Run: `python -m pytest -q tests/evaluate/test_abilities.py`
"""

from __future__ import annotations

import pytest

from dynamics.evaluate.abilities import (
    Rule,
    ScoredItem,
    ability_report,
    chance_of,
    letter_variants,
    rule_of,
    score_perplexity,
    score_reply,
)
from dynamics.models import builtin_tokenizer

FOUR_OPTIONS = "下列哪一项正确？\nA. 甲\nB. 乙\nC. 丙\nD. 丁"
THREE_OPTIONS = "Which one?\nA. red\nB. green\nC. blue"


def _choice(gold: str, prompt: str = FOUR_OPTIONS, ability: str = "biology") -> ScoredItem:
    return ScoredItem(ability, 0, gold, prompt=prompt)


def _true_false(gold: str) -> ScoredItem:
    return ScoredItem("history", 0, gold, prompt="判断正误：秦朝统一了六国。")


def _multi(gold: str) -> ScoredItem:
    return ScoredItem("ethics", 0, gold, prompt=FOUR_OPTIONS)


def _math(gold: str, answer: str | None) -> ScoredItem:
    return ScoredItem("math", 0, gold, answer=answer, prompt="Compute 1 ÷ 2.")


def _ranked(count: int) -> ScoredItem:
    return ScoredItem("role_play", 1, "gold", choices=["gold", *(f"other {k}" for k in range(count - 1))])


# --- which rule --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "rule"),
    [
        (_ranked(3), Rule.PERPLEXITY_CHOICE),
        (ScoredItem("math", 1, "x", choices=["x", "y"]), Rule.PERPLEXITY_CHOICE),  # the format decides first
        (_math(r"\boxed{3}", "3"), Rule.MATH),
        (_math("A", None), Rule.MATH),  # math by ability, even with a letter gold
        (_multi("A、C"), Rule.MULTI_ANSWER),
        (_multi("B"), Rule.MULTI_ANSWER),
        (_choice("B"), Rule.SINGLE_CHOICE),
        (_choice("C", ability="chinese"), Rule.SINGLE_CHOICE),
        (_choice(" D\n", ability="history"), Rule.SINGLE_CHOICE),
        (_choice("A", ability="ceval_physician_fshot"), Rule.SINGLE_CHOICE),
        (_true_false("正确"), Rule.TRUE_FALSE),
        (_true_false("×"), Rule.TRUE_FALSE),
        (ScoredItem("chinese", 0, "床前明月光"), Rule.CLOZE),
    ],
)
def test_rule_of(item: ScoredItem, rule: Rule) -> None:
    assert rule_of(item) is rule


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (_true_false("秦始皇"), "history item's gold.*'秦始皇'"),
        (_multi("A、E"), r"multi-answer \('ethics'\).*'A、E'"),
        (_multi("无"), r"multi-answer \('ethics'\).*'无'"),
        (ScoredItem("chinese", 0, "。"), "cloze item of ability 'chinese'.*'。'"),
        (ScoredItem("chinese", 2, "A"), "question_format must be 0.*got 2.*'chinese'"),
        (ScoredItem("role_play", 1, "x", choices=["x"]), "'role_play' needs at least two choices"),
    ],
)
def test_a_shape_no_rule_fits_is_named(item: ScoredItem, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rule_of(item)


def test_an_item_from_messages_takes_the_last_turns() -> None:
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first reply"},
        {"role": "user", "content": FOUR_OPTIONS},
        {"role": "assistant", "content": "C"},
    ]
    item = ScoredItem.from_messages(messages, "understanding", 0)
    assert (item.gold, item.prompt, item.answer, item.choices) == ("C", FOUR_OPTIONS, None, None)
    with pytest.raises(ValueError, match="no assistant turn"):
        ScoredItem.from_messages(messages[:1], "understanding", 0)


# --- chance ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "chance"),
    [
        (_choice("A"), 1 / 4),
        (_choice("A", prompt=THREE_OPTIONS), 1 / 3),
        (_choice("A", prompt="Pick one: A, B, C or D."), 1 / 4),  # options not listed one a line: 4
        (_true_false("错"), 1 / 2),
        (_multi("B"), 1 / 4),  # C(4, 1) = 4
        (_multi("A、C"), 1 / 6),  # C(4, 2) = 6
        (_multi("ABD"), 1 / 4),  # C(4, 3) = 4
        (_multi("ABCD"), 1.0),  # C(4, 4) = 1
        (ScoredItem("chinese", 0, "床前明月光"), 0.0),
        (_math(r"\boxed{3}", "3"), 0.0),
        (_ranked(3), 1 / 3),
        (_ranked(4), 1 / 4),
    ],
)
def test_chance_of(item: ScoredItem, chance: float) -> None:
    assert chance_of(item) == pytest.approx(chance)


# --- single choice -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("B", 1.0),
        (" B\n", 1.0),
        ("(B)", 1.0),
        ("B.", 1.0),
        ("**B**", 1.0),
        ("B. 乙", 1.0),
        ("B\n\nB. 乙", 1.0),
        ("答案是B", 1.0),
        ("答案：(B)", 1.0),
        ("我选B。", 1.0),
        ("answer: B", 1.0),
        ("The answer is B", 1.0),
        ("The answer is B because the", 1.0),  # cut off by the token budget mid-sentence: still B
        ("The answer is C", 0.0),
        ("A", 0.0),
        ("答案是A或B", 0.0),  # two letters as the answer: ambiguous, and no logits to fall back on
        ("The answer is B or C", 0.0),
        ("E", 0.0),  # no option letter, no logits
        ("", 0.0),
    ],
)
def test_single_choice_from_the_reply(reply: str, score: float) -> None:
    assert score_reply(_choice("B"), reply) == score


LOGITS_FAVOUR_B = {"A": 1.0, "B": 3.0, "C": 0.0, "D": 2.0}


@pytest.mark.parametrize(
    "reply", ["E", "", "嗯", "I am not sure about this one", "答案是A或B", "A. 甲\nB. 乙\nC. 丙\nD. 丁"]
)
def test_an_unparsed_single_choice_falls_back_to_the_first_token_logits(reply: str) -> None:
    assert score_reply(_choice("B"), reply, LOGITS_FAVOUR_B) == 1.0
    assert score_reply(_choice("D"), reply, LOGITS_FAVOUR_B) == 0.0


def test_a_parsed_letter_wins_over_the_logits() -> None:
    assert score_reply(_choice("B"), "答案是C", LOGITS_FAVOUR_B) == 0.0
    assert score_reply(_choice("D"), "D", LOGITS_FAVOUR_B) == 1.0


def test_the_logit_fallback_shares_a_tie_and_ignores_letters_the_item_does_not_offer() -> None:
    tie = {"A": 2.0, "B": 2.0, "C": 1.0, "D": 0.0}
    assert score_reply(_choice("A"), "E", tie) == 0.5  # a two-way tie including the gold
    assert score_reply(_choice("C"), "E", tie) == 0.0
    # three options listed: D's logit (the largest) is no option of this item, so A's 1.0 is the best
    assert score_reply(_choice("A", prompt=THREE_OPTIONS), "", {"A": 1.0, "B": 0.0, "C": 0.5, "D": 9.0}) == 1.0
    assert score_reply(_choice("B"), "", {}) == 0.0
    with pytest.raises(ValueError, match="NaN option-letter logit"):
        score_reply(_choice("B"), "", {"A": float("nan"), "B": 1.0})


# --- true / false ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "reply", "score"),
    [
        ("正确", "正确", 1.0),
        ("正确", "这个说法是对的。", 1.0),
        ("正确", "这个说法绝对正确", 1.0),  # "绝对" (absolutely) is no second keyword
        ("对", "√", 1.0),
        ("T", "True.", 1.0),
        ("V", "Yes, it is.", 1.0),
        ("错误", "错误", 1.0),
        ("错误", "不正确", 1.0),  # negated: false, and its inner 正确 does not count
        ("错误", "不对", 1.0),
        ("正确", "这不正确", 0.0),
        ("×", "This is not true.", 1.0),
        ("F", "The statement is incorrect.", 1.0),
        ("X", "The correct answer is false.", 1.0),  # "correct answer" is no verdict
        ("正确", "正确，但也有错误", 0.0),  # both polarities: wrong whatever the gold
        ("错误", "正确，但也有错误", 0.0),
        ("正确", "对于这个说法，我认为正确", 1.0),  # "对于" (regarding) is no verdict
        ("正确", "我不知道", 0.0),  # no keyword
        ("错误", "", 0.0),
    ],
)
def test_true_false(gold: str, reply: str, score: float) -> None:
    assert score_reply(_true_false(gold), reply) == score


# --- cloze, multi-answer, math -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "reply", "score"),
    [
        ("床前明月光", "床前明月光。", 1.0),
        ("床前明月光", "「床前明月光」", 1.0),
        ("床前明月光", "床前 明月光", 0.0),  # a space is kept (collapsed, not removed)
        ("Paris", " paris.", 1.0),
        ("Paris", "It is Paris.", 0.0),
        ("Paris", "", 0.0),
    ],
)
def test_cloze_is_exact_match_after_normalisation(gold: str, reply: str, score: float) -> None:
    assert score_reply(ScoredItem("chinese", 0, gold), reply) == score


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("AC", 1.0),
        ("CA", 1.0),  # another order
        ("C、A", 1.0),
        ("(A)(C)", 1.0),
        ("答案：C, A", 1.0),
        ("解析：A项符合题意，B项错误……\n所以答案是A和C", 1.0),  # the last line, after its marker
        ("A", 0.0),
        ("ACD", 0.0),
        ("A、C、E", 0.0),  # a letter beyond the options is not dropped
        ("", 0.0),
    ],
)
def test_multi_answer_compares_letter_sets(reply: str, score: float) -> None:
    assert score_reply(_multi("A、C"), reply) == score


@pytest.mark.parametrize(
    ("item", "reply", "score"),
    [
        (_math(r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"), r"所以答案是 $\boxed{\frac{1}{2}}$", 1.0),
        (_math(r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"), r"\boxed{0.5}", 1.0),
        (_math(r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"), r"\boxed{\frac12}", 1.0),
        (_math(r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"), r"first \boxed{1}, finally \boxed{\dfrac{1}{2}}", 1.0),
        (_math(r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"), r"\boxed{\frac{1}{2}} … no, \boxed{2}", 0.0),
        (_math(r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"), r"the answer is \boxed{\frac{1}{2", 0.0),  # cut off
        (_math(r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"), "答案是 1/2", 0.0),  # no boxed answer
        (_math(r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"), "", 0.0),
        (_math(r"解得 $x=\boxed{3}$", None), r"\boxed{x = 3}", 1.0),  # no `answer`: the gold's boxed answer
        (_math("3", None), r"\boxed{3.0}", 1.0),  # nor a boxed one: the gold itself
        (_math(r"$\boxed{7}$", "3"), r"\boxed{3}", 1.0),  # `answer` comes first
    ],
)
def test_math_by_the_last_boxed_answer(item: ScoredItem, reply: str, score: float) -> None:
    assert score_reply(item, reply) == score


def test_a_perplexity_item_has_no_reply_to_score() -> None:
    with pytest.raises(ValueError, match="score_perplexity"):
        score_reply(_ranked(3), "gold")
    with pytest.raises(ValueError, match="score_reply"):
        score_perplexity(_choice("A"), [1.0, 2.0])


# --- perplexity --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nll", "score"),
    [
        ([1.0, 2.0, 3.0], 1.0),
        ([2.0, 1.0, 3.0], 0.0),
        ([1.0, 1.0, 3.0], 0.5),  # two-way tie including the gold
        ([1.0, 1.0, 1.0], 1 / 3),
        ([2.0, 1.0, 1.0], 0.0),  # a tie without the gold
    ],
)
def test_score_perplexity(nll: list[float], score: float) -> None:
    assert score_perplexity(_ranked(3), nll) == pytest.approx(score)


def test_score_perplexity_refuses_nan_and_a_wrong_count() -> None:
    with pytest.raises(ValueError, match="NaN"):
        score_perplexity(_ranked(3), [1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="2 NLLs for the 3 choices"):
        score_perplexity(_ranked(3), [1.0, 2.0])


# --- letter tokens -----------------------------------------------------------------------------------------------


class FakeSentencePieceTokenizer:
    """A SentencePiece-like vocabulary: a "▁" word-boundary prefix on every encoded text, greedy longest pieces,
    unknown characters as <unk> (0)."""

    VOCAB = {"▁": 3, "▁A": 10, "A": 11, "▁B": 12, "B": 13, "▁C": 14, "C": 15, "▁D": 16}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        pieces, rest = [], "▁" + text.replace(" ", "▁")
        while rest:
            piece = max((p for p in self.VOCAB if rest.startswith(p)), key=len, default=rest[0])
            pieces.append(self.VOCAB.get(piece, 0))
            rest = rest[len(piece) :]
        return pieces

    def get_vocab(self) -> dict[str, int]:
        return dict(self.VOCAB)


def test_letter_variants_of_a_byte_tokenizer() -> None:
    # ByT5 ids are byte + 3: "A" (65) is 68; " A" is two tokens [35, 68], so it is no variant
    assert letter_variants(builtin_tokenizer()) == {"A": [68], "B": [69], "C": [70], "D": [71]}


def test_letter_variants_of_a_sentencepiece_tokenizer() -> None:
    # encoding "A" gives "▁A" (10); the bare piece "A" (11) is taken from the vocabulary; " A" encodes to
    # "▁", "▁A" (two tokens) and is dropped; D has no bare piece
    assert letter_variants(FakeSentencePieceTokenizer()) == {"A": [10, 11], "B": [12, 13], "C": [14, 15], "D": [16]}
    assert letter_variants(FakeSentencePieceTokenizer(), letters="AB") == {"A": [10, 11], "B": [12, 13]}
    with pytest.raises(ValueError, match="'E' is no single token"):
        letter_variants(FakeSentencePieceTokenizer(), letters="E")


# --- report ------------------------------------------------------------------------------------------------------


def test_ability_report_is_the_mean_over_abilities() -> None:
    # math: 1 item, score 1, chance 0 -> 100 %, chance 0 %. history: 3 items, scores 0, 0, 1, chance 0.5 each ->
    # 100/3 %, chance 50 %. Overall (100 + 100/3) / 2 = 200/3 (the micro mean over 4 items would be 50);
    # chance (0 + 50) / 2 = 25 (micro: 37.5).
    report = ability_report(["math", "history", "history", "history"], [1.0, 0.0, 0.0, 1.0], [0.0, 0.5, 0.5, 0.5])
    assert report == {
        "ability/history": pytest.approx(100 / 3),
        "ability_chance/history": pytest.approx(50.0),
        "ability/math": pytest.approx(100.0),
        "ability_chance/math": pytest.approx(0.0),
        "ability/overall": pytest.approx(200 / 3),
        "ability_chance/overall": pytest.approx(25.0),
    }


def test_ability_report_takes_fractional_scores() -> None:
    # one perplexity tie (0.5) and one win: (0.5 + 1) / 2 = 75 %, chance (1/3 + 1/3) / 2 = 100/3 %
    report = ability_report(["role_play", "role_play"], [0.5, 1.0], [1 / 3, 1 / 3])
    assert report["ability/role_play"] == pytest.approx(75.0)
    assert report["ability/overall"] == pytest.approx(75.0)
    assert report["ability_chance/overall"] == pytest.approx(100 / 3)


@pytest.mark.parametrize(
    ("abilities", "scores", "chances", "message"),
    [
        ([], [], [], "no scored items"),
        (["math"], [1.0, 0.0], [0.0], "1 abilities, 2 scores and 1 chances"),
        (["overall"], [1.0], [0.0], "may not be named 'overall'"),
        (["math"], [1.5], [0.0], r"fractions in \[0, 1\]; got \[1.5\]"),
        (["math"], [float("nan")], [0.0], r"fractions in \[0, 1\]"),
    ],
)
def test_ability_report_refuses_bad_input(
    abilities: list[str], scores: list[float], chances: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ability_report(abilities, scores, chances)
