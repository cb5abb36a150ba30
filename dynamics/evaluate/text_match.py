"""Study B's text scores of a reply against its references (SPEC §4): ROUGE-1, ROUGE-L and exact match, ×100.

ROUGE is rouge-score's own (Porter stemming, its default tokenizer), so our numbers equal anyone else's
`RougeScorer(["rouge1", "rougeL"], use_stemmer=True)`. Exact match compares answers after SQuAD-style
normalisation (lowercase, no punctuation, single spaces). Each score is the max over an item's references;
`dynamics.evaluate.aggregate` adds them up per task.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence
from functools import cache

from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rougeL")


class _PunctuationTable(dict):
    """str.translate table deleting every Unicode punctuation character (category P*) and ASCII's punctuation.

    Filled on demand: a full table would mean classifying all 1.1M code points before the first answer.
    """

    _ASCII = frozenset(map(ord, string.punctuation))  # includes symbols such as $ + < = > ^ ` | ~ (category S)

    def __missing__(self, code: int) -> int | None:
        kept = None if code in self._ASCII or unicodedata.category(chr(code)).startswith("P") else code
        self[code] = kept
        return kept


_PUNCTUATION = _PunctuationTable()


def normalise_answer(text: str) -> str:
    """Lowercased, punctuation removed, whitespace runs collapsed to one space, stripped."""
    return " ".join(text.lower().translate(_PUNCTUATION).split())


def _require_references(references: Sequence[str]) -> None:
    if isinstance(references, str):  # a bare string would be scored character by character
        raise TypeError("references must be a sequence of strings, not one string")
    if not references:
        raise ValueError("an item has no references: exact match and ROUGE need at least one")


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """100.0 when the normalised prediction equals a normalised reference, else 0.0."""
    _require_references(references)
    normalised = normalise_answer(prediction)
    return 100.0 if any(normalise_answer(reference) == normalised for reference in references) else 0.0


@cache
def _scorer() -> rouge_scorer.RougeScorer:
    # One scorer for the process: building one loads the Porter stemmer, and every item would pay for it.
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """{"rouge1": …, "rougeL": …}: F-measure ×100, each the max over `references`."""
    _require_references(references)
    scorer = _scorer()
    best = dict.fromkeys(ROUGE_TYPES, 0.0)
    for reference in references:
        scores = scorer.score(reference, prediction)  # (target, prediction): the reference comes first
        for kind in ROUGE_TYPES:
            best[kind] = max(best[kind], scores[kind].fmeasure)
    return {kind: value * 100 for kind, value in best.items()}
