"""Study A's per-ability scores (SPEC §4): each DoIT test item scored by the rule its shape calls for.

Single choice is read from the reply, or from the option letters' logits at the first answer token when the
reply names no one letter; true/false needs a keyword match of exactly one polarity; cloze is exact match;
multi-answer compares letter sets; math compares the last boxed answer; `question_format` 1 items rank their
choices by mean NLL. Every item also carries its chance score, and a report is the mean over abilities of
each ability's percentage.

The rules follow the original study's scorer, except where it mis-scored: a perplexity tie counted as correct,
"不正确" (not correct) counted as true and the "T" of "The" as a keyword, a reply longer than one character went
straight to the logits (of the bare letter token only), and the overall score was halved by counting the chance
entries as abilities.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from dynamics.evaluate.math_answer import last_boxed, math_equal
from dynamics.evaluate.text_match import normalise_answer

OPTION_LETTERS = "ABCD"


class Rule(str, Enum):
    """How an item is scored."""

    SINGLE_CHOICE = "single_choice"
    TRUE_FALSE = "true_false"
    CLOZE = "cloze"
    MULTI_ANSWER = "multi_answer"
    MATH = "math"
    PERPLEXITY_CHOICE = "perplexity_choice"


@dataclass(frozen=True)
class ScoredItem:
    """One DoIT evaluation item, as the scorer needs it."""

    ability: str  # DoIT's `type`
    question_format: int  # 0: generate a reply; 1: rank `choices` by perplexity
    gold: str  # the gold reply: the last assistant turn's content
    answer: str | None = None  # DoIT's `answer` field: the final answer of a math item
    choices: list[str] | None = None  # question_format 1: candidate replies, the first one gold
    prompt: str = ""  # the last user turn (where single-choice options are listed)

    @classmethod
    def from_messages(
        cls,
        messages: Sequence[Mapping[str, str]],
        ability: str,
        question_format: int,
        answer: str | None = None,
        choices: Sequence[str] | None = None,
    ) -> ScoredItem:
        """The item of a DoIT record: gold from its last assistant turn, prompt from its last user turn."""
        gold = next((turn["content"] for turn in reversed(messages) if turn["role"] == "assistant"), None)
        prompt = next((turn["content"] for turn in reversed(messages) if turn["role"] == "user"), "")
        if gold is None:
            raise ValueError(f"a {ability!r} item has no assistant turn to take its gold reply from")
        return cls(ability, question_format, gold, answer, None if choices is None else list(choices), prompt)


# True/false keywords as DoIT writes its golds, and the English words a reply may use instead.
TRUE_GOLDS = ("正确", "对", "T", "√", "V", "true", "yes", "correct")
FALSE_GOLDS = ("错误", "错", "F", "×", "X", "false", "no", "incorrect", "wrong")

# (pattern, polarity) of every keyword a reply may contain. One alternation scanned left to right takes a negated
# phrase ("不正确", "not true") before the keyword inside it, so "不对" never also counts as "对".
_TF_KEYWORDS: tuple[tuple[str, bool], ...] = (
    ("不正确", False),
    ("不对", False),
    (r"(?i:\bnot\s+(?:true|correct|right)\b)", False),
    (r"(?i:\bisn'?t\s+(?:true|correct|right)\b)", False),
    (r"(?i:\bnot\s+(?:false|wrong)\b)", True),
    ("正确", True),
    ("(?<![绝相针面反核])对(?![于应比待象方话手称])", True),  # "对于" (regarding), "相对" (relative) … are no verdict
    ("错误", False),
    ("错", False),
    (r"(?i:\bincorrect\b)", False),
    (r"(?i:\bcorrect\b(?!\s+(?:answer|option|choice)))", True),  # "the correct answer is false" is false
    (r"(?i:\btrue\b)", True),
    (r"(?i:\byes\b)", True),
    (r"(?i:\bfalse\b)", False),
    (r"(?i:\bwrong\b)", False),
    (r"(?i:\bno\b)", False),
    (r"(?<![A-Za-z])[TV](?![A-Za-z])", True),
    (r"(?<![A-Za-z])[FX](?![A-Za-z])", False),
    ("√", True),
    ("×", False),
)
_TF_PATTERN = re.compile("|".join(f"({pattern})" for pattern, _ in _TF_KEYWORDS))

# A reply's letter after an answer marker: "答案是A", "答案：(B)", "选C", "Answer: D", "The answer is B".
_MARKER = (
    r"(?:(?:正确)?(?:答案|选项|选择|应选|选)(?:应该|应当|应|就|当)?(?:是|为|选)?"
    r"|(?i:\b(?:the\s+)?(?:correct\s+|right\s+|best\s+|final\s+)?(?:answer|option|choice)"
    r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be))?))"
)
_MARKED_LETTER = re.compile(
    _MARKER + r"\s*[:：]?\s*(?:选项|选|(?i:option|choice)\s*)?[(（\[【\"'“‘]?\s*([A-D])(?![A-Za-z])"
)
_ALTERNATIVE = re.compile(r"\s*(?:(?i:or|and)|或者|或|和|与|及|/|、|,|，)\s*[(（\[【]?\s*([A-D])(?![A-Za-z])")
_LEADING_LETTER = re.compile(r"\s*[(（\[【]?\s*([A-D])(?=\s*$|\s*\n|\s*[)）\]】.．。、:：,，]|\s+[^\x00-\x7f])")
_AROUND_BARE_LETTER = "()（）[]【】*\"'“”‘’.。:：,， \t\r\n"
_OPTION_LINE = re.compile(r"(?:^|\n)[ \t]*([A-D])[ \t]*[.．、:：)）]")
_SEPARATORS = re.compile(r"[\s、,，;；/和及与()（）]+")
_MULTI_MARKER = re.compile(r"答案|(?i:\banswer\b)")
_LETTER_RUN = re.compile(r"[A-Za-z]+")


def rule_of(item: ScoredItem) -> Rule:
    """The rule that scores `item`, from its question format, ability and gold (ValueError for a shape no rule
    fits)."""
    if item.question_format == 1:
        if not item.choices or len(item.choices) < 2:
            raise ValueError(
                f"a question_format 1 item of ability {item.ability!r} needs at least two choices to rank, "
                f"got {item.choices!r}"
            )
        return Rule.PERPLEXITY_CHOICE
    if item.question_format != 0:
        raise ValueError(
            f"question_format must be 0 (generate) or 1 (rank choices); got {item.question_format!r} "
            f"for an item of ability {item.ability!r}"
        )
    gold = item.gold.strip()
    if item.ability == "math":
        return Rule.MATH
    if item.ability == "ethics":
        _gold_letters(item)
        return Rule.MULTI_ANSWER
    if len(gold) == 1 and gold in OPTION_LETTERS:
        return Rule.SINGLE_CHOICE
    if item.ability == "history":
        if _gold_polarity(gold) is None:
            raise ValueError(
                f"a history item's gold must be an option letter A–D or a true/false keyword "
                f"({', '.join(TRUE_GOLDS)} / {', '.join(FALSE_GOLDS)}); got {item.gold!r}"
            )
        return Rule.TRUE_FALSE
    if not normalise_answer(gold):
        raise ValueError(f"a cloze item of ability {item.ability!r} has no gold answer to match: {item.gold!r}")
    return Rule.CLOZE


def _gold_polarity(gold: str) -> bool | None:
    word = gold.strip().strip("。.！!").casefold()
    if word in {keyword.casefold() for keyword in TRUE_GOLDS}:
        return True
    if word in {keyword.casefold() for keyword in FALSE_GOLDS}:
        return False
    return None


def _gold_letters(item: ScoredItem) -> frozenset[str]:
    letters = _SEPARATORS.sub("", item.gold)
    if not letters or any(letter not in OPTION_LETTERS for letter in letters):
        raise ValueError(
            f"a multi-answer ({item.ability!r}) item's gold must be option letters A–D such as 'AC' or 'A、C'; "
            f"got {item.gold!r}"
        )
    return frozenset(letters)


def option_count(prompt: str) -> int:
    """How many options (A., B., … at the start of a line) `prompt` lists; 4 when it lists them some other way."""
    found = set(_OPTION_LINE.findall(prompt))
    count = len(found)
    # Options are A, B, C … without gaps; anything else means the lines were not an option list.
    return count if count >= 2 and found == set(OPTION_LETTERS[:count]) else len(OPTION_LETTERS)


def chance_of(item: ScoredItem) -> float:
    """The score in [0, 1] that guessing earns on `item`."""
    rule = rule_of(item)
    if rule is Rule.SINGLE_CHOICE:
        return 1 / option_count(item.prompt)
    if rule is Rule.TRUE_FALSE:
        return 0.5
    if rule is Rule.MULTI_ANSWER:
        options, right = option_count(item.prompt), len(_gold_letters(item))
        if right > options:
            raise ValueError(f"a multi-answer gold {item.gold!r} names more letters than the {options} options listed")
        return 1 / math.comb(options, right)
    if rule is Rule.PERPLEXITY_CHOICE:
        assert item.choices is not None  # rule_of checked
        return 1 / len(item.choices)
    return 0.0  # cloze and math: an open answer is not guessed


class LetterTokenizer(Protocol):
    """What letter_variants needs of a Hugging Face tokenizer."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def get_vocab(self) -> dict[str, int]: ...


def letter_variants(tokenizer: LetterTokenizer, letters: str = OPTION_LETTERS) -> dict[str, list[int]]:
    """Token ids a reply can start with to choose each letter: the letter, " A", and SentencePiece's "▁A" or
    byte-level BPE's "ĠA", each only where it is a single token. The caller takes a letter's logit as the max
    over its ids."""
    vocab = tokenizer.get_vocab()
    variants: dict[str, list[int]] = {}
    for letter in letters:
        ids: list[int] = []
        for text in (letter, f" {letter}"):
            encoded = tokenizer.encode(text, add_special_tokens=False)
            if len(encoded) == 1:
                ids.append(encoded[0])
        # A vocabulary entry, not text: encoding "▁A" through SentencePiece would add another word boundary.
        ids.extend(vocab[token] for token in (letter, f"▁{letter}", f"Ġ{letter}") if token in vocab)
        variants[letter] = list(dict.fromkeys(ids))
        if not variants[letter]:
            raise ValueError(f"option letter {letter!r} is no single token of this tokenizer, in any variant")
    return variants


def chosen_letter(reply: str) -> str | None:
    """The one option letter `reply` answers with ("B", "(B)", "B. …", "答案是B", "The answer is B"), or None when
    it names none, or names two different ones as its answer ("A or B", or a list of "A. …" and "B. …" lines)."""
    bare = reply.strip(_AROUND_BARE_LETTER)
    if len(bare) <= 1:
        return bare if bare and bare in OPTION_LETTERS else None
    named = set(_OPTION_LINE.findall(reply))  # a reply listing "A. …" and "B. …" echoes the options, answers none
    leading = _LEADING_LETTER.match(reply)
    if leading:
        named.add(leading.group(1))
    for marked in _MARKED_LETTER.finditer(reply):
        named.add(marked.group(1))
        cursor = marked.end()
        while alternative := _ALTERNATIVE.match(reply, cursor):
            named.add(alternative.group(1))
            cursor = alternative.end()
    return named.pop() if len(named) == 1 else None


def reply_polarity(reply: str) -> bool | None:
    """True or False when every true/false keyword of `reply` says the same; None when none does or they disagree."""
    found: set[bool] = set()
    for match in _TF_PATTERN.finditer(reply):
        assert match.lastindex is not None  # every alternative is one group
        found.add(_TF_KEYWORDS[match.lastindex - 1][1])
    return found.pop() if len(found) == 1 else None


def reply_letters(reply: str) -> frozenset[str]:
    """The option letters a multi-answer reply gives: on its last non-empty line, after the last "答案"/"answer"
    there, every run of capital letters A–F ("AC", "A、C", "C和A"); words are not letters."""
    lines = [line for line in reply.splitlines() if line.strip()]
    if not lines:
        return frozenset()
    line = lines[-1]
    markers = list(_MULTI_MARKER.finditer(line))
    if markers:
        line = line[markers[-1].end() :]
    runs = _LETTER_RUN.findall(line)
    return frozenset(letter for run in runs if set(run) <= set("ABCDEF") for letter in run)


def _first_token_choice(item: ScoredItem, first_token_logits: Mapping[str, float] | None) -> float:
    """Credit from the option letters' logits at the first answer token: 1 for a strict win of the gold, 1/m for a
    tie of m letters that includes it (a tie cannot tell the options apart), else 0."""
    if not first_token_logits:
        return 0.0
    offered = OPTION_LETTERS[: option_count(item.prompt)]
    logits = {letter: first_token_logits[letter] for letter in offered if letter in first_token_logits}
    if any(math.isnan(value) for value in logits.values()):
        raise ValueError(f"a NaN option-letter logit for an item of ability {item.ability!r}: {logits}")
    if not logits:
        return 0.0
    best = max(logits.values())
    tied = [letter for letter, value in logits.items() if value == best]
    return 1 / len(tied) if item.gold.strip() in tied else 0.0


def score_reply(item: ScoredItem, reply: str, first_token_logits: Mapping[str, float] | None = None) -> float:
    """1.0 when `reply` answers `item` correctly, else 0.0 (a fraction only for a logit tie, see below).

    `first_token_logits` (letter → logit at the first answer token, each the max over letter_variants' ids)
    decides a single-choice item whose reply names no one letter.
    """
    rule = rule_of(item)
    if rule is Rule.SINGLE_CHOICE:
        letter = chosen_letter(reply)
        if letter is None:
            return _first_token_choice(item, first_token_logits)
        return float(letter == item.gold.strip())
    if rule is Rule.TRUE_FALSE:
        polarity = reply_polarity(reply)
        return float(polarity is not None and polarity == _gold_polarity(item.gold))
    if rule is Rule.CLOZE:
        return float(normalise_answer(reply) == normalise_answer(item.gold))
    if rule is Rule.MULTI_ANSWER:
        return float(reply_letters(reply) == _gold_letters(item))
    if rule is Rule.MATH:
        gold = item.answer or last_boxed(item.gold) or item.gold
        return float(math_equal(last_boxed(reply), gold))
    raise ValueError(
        f"an item of ability {item.ability!r} with question_format 1 is scored by score_perplexity, not from a reply"
    )


def score_perplexity(item: ScoredItem, choice_nll: Sequence[float]) -> float:
    """1.0 when the gold choice (the first) has the strictly lowest mean NLL; 1/m when m choices tie for lowest
    and the gold is one of them; else 0.0."""
    if rule_of(item) is not Rule.PERPLEXITY_CHOICE:
        raise ValueError(f"an item of ability {item.ability!r} with question_format 0 is scored by score_reply")
    assert item.choices is not None  # rule_of checked
    if len(choice_nll) != len(item.choices):
        raise ValueError(
            f"{len(choice_nll)} NLLs for the {len(item.choices)} choices of an item of ability {item.ability!r}"
        )
    if any(math.isnan(value) for value in choice_nll):
        raise ValueError(f"a NaN choice NLL for an item of ability {item.ability!r}: {list(choice_nll)}")
    lowest = min(choice_nll)
    tied = [index for index, value in enumerate(choice_nll) if value == lowest]
    return 1 / len(tied) if 0 in tied else 0.0


def ability_report(abilities: Sequence[str], scores: Sequence[float], chances: Sequence[float]) -> dict[str, float]:
    """`ability/<name>` (100 × mean score of its items) and `ability_chance/<name>` (100 × mean chance) for every
    ability, and `ability/overall`, `ability_chance/overall`: the mean over abilities, each counted once."""
    if not len(abilities) == len(scores) == len(chances):
        raise ValueError(
            f"{len(abilities)} abilities, {len(scores)} scores and {len(chances)} chances: one of each per item"
        )
    if not abilities:
        raise ValueError("no scored items: the ability report needs at least one")
    if "overall" in abilities:
        raise ValueError("an ability may not be named 'overall': that name is the mean over abilities")
    outside = [value for value in (*scores, *chances) if not 0.0 <= value <= 1.0]
    if outside:
        raise ValueError(f"scores and chances are fractions in [0, 1]; got {outside[:5]}")
    totals: dict[str, tuple[float, float, float]] = {}
    for ability, score, chance in zip(abilities, scores, chances, strict=True):
        score_sum, chance_sum, count = totals.get(ability, (0.0, 0.0, 0.0))
        totals[ability] = (score_sum + score, chance_sum + chance, count + 1)
    return ability_percentages(totals)


def ability_percentages(totals: Mapping[str, tuple[float, float, float]]) -> dict[str, float]:
    """`ability_report` from per-ability (sum of scores, sum of chances, items) — what ranks add up; an ability
    without items is left out (it is not "present")."""
    present = sorted(ability for ability, (_, _, count) in totals.items() if count > 0)
    if not present:
        raise ValueError("no scored items: the ability report needs at least one")
    report: dict[str, float] = {}
    for ability in present:
        score_sum, chance_sum, count = totals[ability]
        report[f"ability/{ability}"] = 100 * score_sum / count
        report[f"ability_chance/{ability}"] = 100 * chance_sum / count
    report["ability/overall"] = sum(report[f"ability/{name}"] for name in present) / len(present)
    report["ability_chance/overall"] = sum(report[f"ability_chance/{name}"] for name in present) / len(present)
    return report
