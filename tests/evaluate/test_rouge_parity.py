"""Our ROUGE and exact match against a direct computation, on 500 seeded random (prediction, references) pairs.

ROUGE must equal rouge-score's own RougeScorer exactly (==), so our numbers are comparable with anyone else's;
exact match must equal the SPEC §4 rule (lowercase, strip punctuation, collapse whitespace) restated here.

Run: `python -m pytest -q tests/evaluate/test_rouge_parity.py`
"""

from __future__ import annotations

import random
import string
import unicodedata

from rouge_score import rouge_scorer

from dynamics.evaluate.text_match import exact_match, rouge

# Casing, punctuation, stemmable forms (running/runs/run, dogs/dog, jumped/jumping), digits and non-ASCII words.
WORDS = [
    "The", "the", "THE", "cat", "cats", "Cat.", "running", "runs", "run", "ran", "dog", "Dogs", "dogs,",
    "quickly", "quick", "jumped", "jumping", "over", "a", "an", "fox", "fox!", "hello,", "world.", "Café",
    "naïve", "?", "--", "'s", "don't", "42", "3.14", "x-ray", "“quoted”", "你好", "，", "(parens)", "e.g.",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "  ", "\n", "\t"]
PAIRS = 500


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return "".join(word + rng.choice(SEPARATORS) for word in words).strip(" ") if words else ""


def _variant(rng: random.Random, text: str) -> str:
    """The same answer as far as exact match goes: other casing, spacing and punctuation around it."""
    return rng.choice(["", " ", "\n"]) + rng.choice([text.upper(), text.lower(), text]) + rng.choice(["", ".", "!"])


def _pairs() -> list[tuple[str, list[str]]]:
    rng = random.Random(20240917)
    pairs = []
    for _ in range(PAIRS):
        references = [_sentence(rng, 1, 8) for _ in range(rng.randint(1, 3))]
        prediction = _variant(rng, rng.choice(references)) if rng.random() < 0.2 else _sentence(rng, 0, 8)
        pairs.append((prediction, references))
    return pairs


def _restated_normalisation(text: str) -> str:
    lowered = text.lower()
    kept = "".join(c for c in lowered if c not in string.punctuation and not unicodedata.category(c).startswith("P"))
    return " ".join(kept.split())


def test_rouge_equals_rouge_score_s_scorer_exactly() -> None:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    for prediction, references in _pairs():
        ours = rouge(prediction, references)
        for kind in ("rouge1", "rougeL"):
            # RougeScorer.score(target, prediction): the reference comes first
            direct = max(scorer.score(reference, prediction)[kind].fmeasure for reference in references) * 100
            assert ours[kind] == direct, (kind, prediction, references)


def test_exact_match_equals_the_rule_restated() -> None:
    matches = 0
    for prediction, references in _pairs():
        expected = _restated_normalisation(prediction) in {_restated_normalisation(r) for r in references}
        assert exact_match(prediction, references) == (100.0 if expected else 0.0), (prediction, references)
        matches += expected
    assert 50 < matches < PAIRS  # both outcomes are exercised (about a fifth of predictions are variants)
