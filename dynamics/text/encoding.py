"""Token ids and reply-only loss masks of one conversation under a template (SPEC §3).

Each turn is tokenised on its own and concatenated, so the mask boundary is exact whatever the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dynamics.text.templates import Template

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    """Token ids and labels of one example (labels = IGNORE_INDEX outside reply tokens)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def num_target_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def encode(
    messages: Sequence[dict], tokenizer: PreTrainedTokenizerBase, template: Template, max_length: int
) -> EncodedExample | None:
    """Token ids and reply-only labels, truncated to `max_length`; None when truncation leaves no target token.

    A None is dropped and counted by the caller, never trained on as a zero-loss example.
    """
    input_ids: list[int] = []
    labels: list[int] = []
    if template.starts_with_bos and tokenizer.bos_token_id is not None:
        input_ids.append(tokenizer.bos_token_id)
        labels.append(IGNORE_INDEX)
    for text, is_target in template.segments(messages, tokenizer):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids.extend(ids)
        labels.extend(ids if is_target else [IGNORE_INDEX] * len(ids))
    encoded = EncodedExample(input_ids[:max_length], labels[:max_length])
    return encoded if encoded.num_target_tokens > 0 else None
