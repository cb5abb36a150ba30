"""Study B's text metrics of a generated reply against its references: ROUGE-1, ROUGE-L and exact match (×100)."""

from __future__ import annotations

from functools import lru_cache

from dynamics.evaluate.metrics import METRICS, Metric, ScoredReply
from dynamics.evaluate.text_match import exact_match, rouge


@lru_cache(maxsize=4096)  # ROUGE-1 and ROUGE-L of one reply come from one scoring pass
def _rouge(text: str, references: tuple[str, ...]) -> dict[str, float]:
    return rouge(text, references)


def _rouge1(scored: ScoredReply) -> float:
    return _rouge(scored.reply.text, tuple(scored.references))["rouge1"]


def _rouge_l(scored: ScoredReply) -> float:
    return _rouge(scored.reply.text, tuple(scored.references))["rougeL"]


def _exact_match(scored: ScoredReply) -> float:
    return exact_match(scored.reply.text, scored.references)


_GENERATION = frozenset({"generation"})
METRICS.add(
    "rouge1", Metric("ROUGE-1 F-measure ×100 (Porter stemming), max over references", _GENERATION, True, score=_rouge1)
)
METRICS.add(
    "rouge_l",
    Metric("ROUGE-L F-measure ×100 (Porter stemming), max over references", _GENERATION, True, score=_rouge_l),
)
METRICS.add(
    "exact_match",
    Metric(
        "100 when the normalised reply equals a normalised reference (SPEC §4)", _GENERATION, True, score=_exact_match
    ),
)
