"""Token ids and reply-only loss masks of one conversation under a template (SPEC §3), truncated to keep the reply.

The token stream is the tokenizer's encoding of the whole rendered text, so a model trains on exactly what it
would see at inference: encoding turn by turn instead adds SentencePiece's "▁" prefix at every boundary. Which
tokens are targets comes from the characters they cover: a token is a target when it covers any character of a
reply or its end marker. So a token that straddles the boundary, like Llama's "▁Hello" carrying the space of
"Assistant: ", is a target: it is the reply's first token, and predicting it is predicting the reply.

A tokenizer without character offsets (a slow, Python one) is encoded segment by segment, and the result is
checked against the whole-text encoding: byte-level tokenizers agree; any other disagreement is an error.

Truncation (SPEC §3 "do better"): an over-long example loses prompt tokens first — from the left of the prompt,
or just after its first `head_tokens` ('middle', keeping the instruction head) — and the reply only once no prompt
token is left, from its end. The prompt is everything before the last reply (in a multi-turn conversation the
earlier turns are its context; their replies stay targets while they survive); a leading BOS always stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dynamics.config import TrainConfig
from dynamics.text.templates import Template

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Truncation:
    """How an example longer than `max_length` is cut (see the module docstring)."""

    mode: Literal["left", "middle"] = "left"
    head_tokens: int = 64

    @classmethod
    def of(cls, config: TrainConfig) -> Truncation:
        return cls(config.truncation, config.truncation_head_tokens)


@dataclass(frozen=True)
class EncodedExample:
    """Token ids and labels of one example (labels = IGNORE_INDEX outside reply tokens)."""

    input_ids: list[int]
    labels: list[int]
    prompt_tokens_cut: int = 0  # prompt tokens truncation removed
    reply_tokens_cut: int = 0  # reply tokens truncation removed (only once no prompt token was left)

    @property
    def num_target_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


class TokenizerMismatch(ValueError):
    """A slow tokenizer whose per-segment encoding differs from its whole-text encoding."""


def _targets_by_offsets(text: str, spans: Sequence[tuple[int, int]], tokenizer) -> tuple[list[int], list[bool]]:
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    flags = []
    span_index = 0
    for start, end in offsets:  # offsets and spans both ascend: one linear pass
        while span_index < len(spans) and spans[span_index][1] <= start:
            span_index += 1  # that reply ended before this token begins
        if span_index == len(spans):
            flags.append(False)
            continue
        span_start = spans[span_index][0]
        flags.append(end > span_start if end > start else start >= span_start)  # a zero-width token: where it sits
    return ids, flags


def _targets_by_segments(text: str, segments: Sequence[tuple[str, bool]], tokenizer) -> tuple[list[int], list[bool]]:
    ids: list[int] = []
    flags: list[bool] = []
    for piece, is_target in segments:
        piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
        ids.extend(piece_ids)
        flags.extend([is_target] * len(piece_ids))
    if ids != tokenizer(text, add_special_tokens=False)["input_ids"]:
        raise TokenizerMismatch(
            f"{type(tokenizer).__name__} encodes a conversation differently as a whole than turn by turn, and "
            "gives no character offsets to mask it exactly: load its fast version (AutoTokenizer use_fast=True)"
        )
    return ids, flags


def tokenize(
    messages: Sequence[dict], tokenizer: PreTrainedTokenizerBase, template: Template
) -> tuple[list[int], list[bool]]:
    """The whole conversation's token ids (BOS first when the template wants one) and which are targets."""
    segments = template.segments(messages, tokenizer)
    text = "".join(piece for piece, _ in segments)
    if getattr(tokenizer, "is_fast", False):
        spans, position = [], 0
        for piece, is_target in segments:
            if is_target and piece:
                spans.append((position, position + len(piece)))
            position += len(piece)
        ids, flags = _targets_by_offsets(text, spans, tokenizer)
    else:
        ids, flags = _targets_by_segments(text, segments, tokenizer)
    if template.starts_with_bos and tokenizer.bos_token_id is not None:
        return [tokenizer.bos_token_id, *ids], [False, *flags]
    return ids, flags


def _last_reply_start(flags: Sequence[bool]) -> int:
    """Index of the first token of the last run of targets (len(flags) when there is none)."""
    end = len(flags)
    while end > 0 and not flags[end - 1]:
        end -= 1
    start = end
    while start > 0 and flags[start - 1]:
        start -= 1
    return start if end > 0 else len(flags)


def encode(
    messages: Sequence[dict],
    tokenizer: PreTrainedTokenizerBase,
    template: Template,
    max_length: int,
    truncation: Truncation = Truncation(),  # noqa: B008 (frozen, so one shared default is safe)
) -> EncodedExample | None:
    """Token ids and reply-only labels within `max_length`; None when no target token remains (dropped and
    counted by the caller, never trained on as a zero-loss example)."""
    ids, flags = tokenize(messages, tokenizer, template)
    kept = 1 if template.starts_with_bos and tokenizer.bos_token_id is not None and ids else 0
    reply_start = _last_reply_start(flags)
    excess = len(ids) - max_length
    prompt_cut = reply_cut = 0
    if excess > 0:
        prompt_length = max(0, reply_start - kept)
        prompt_cut = min(excess, prompt_length)
        head = kept if truncation.mode == "left" else kept + min(truncation.head_tokens, prompt_length - prompt_cut)
        ids = ids[:head] + ids[head + prompt_cut :]
        flags = flags[:head] + flags[head + prompt_cut :]
        reply_cut = excess - prompt_cut
        if reply_cut:
            ids, flags = ids[:max_length], flags[:max_length]
    labels = [token if is_target else IGNORE_INDEX for token, is_target in zip(ids, flags, strict=True)]
    if not any(flags):
        return None
    return EncodedExample(ids, labels, prompt_cut, reply_cut)
