"""Chat templates and loss masks (SPEC §3): loss only on assistant reply tokens and their end token.

Each turn is tokenised on its own and concatenated, so the mask boundary is exact whatever the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def _segments(messages: Sequence[dict], template: str, tokenizer: PreTrainedTokenizerBase) -> list[tuple[str, bool]]:
    """(text, is_target) pieces of one conversation under `template`, end tokens included."""
    eos = tokenizer.eos_token
    pieces: list[tuple[str, bool]] = []
    for turn in messages:
        if template == "study_b":
            if turn["role"] == "user":
                pieces.append((f"User: {turn['content']}\nAssistant: ", False))
            else:
                pieces.append((turn["content"] + eos, True))
        elif template == "study_a":
            if turn["role"] == "user":
                pieces.append((f"<user>{turn['content']}<assistant>", False))
            else:
                pieces.append((turn["content"] + "<eot>", True))
        else:
            raise ValueError(f"unknown template {template!r}; expected 'study_b' or 'study_a'")
    return pieces


def encode(
    messages: Sequence[dict], tokenizer: PreTrainedTokenizerBase, template: str, max_length: int
) -> EncodedExample | None:
    """Token ids and reply-only labels, truncated to `max_length`; None when truncation leaves no target token.

    A None is dropped and counted by the caller, never trained on as a zero-loss example.
    """
    input_ids: list[int] = []
    labels: list[int] = []
    if template == "study_b" and tokenizer.bos_token_id is not None:
        input_ids.append(tokenizer.bos_token_id)
        labels.append(IGNORE_INDEX)
    for text, is_target in _segments(messages, template, tokenizer):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids.extend(ids)
        labels.extend(ids if is_target else [IGNORE_INDEX] * len(ids))
    encoded = EncodedExample(input_ids[:max_length], labels[:max_length])
    return encoded if encoded.num_target_tokens > 0 else None
