"""What a model is given to answer an evaluation item: the conversation up to its last reply, under a template.

Generation starts where the last reply would start, so the prompt is everything before it, rendered exactly as
in training (`tokenize`), and it ends with the template's cue for the assistant ("\\nAssistant: ", "<assistant>").
A prompt longer than its budget loses tokens as training truncation would (from the left, or after the head under
'middle'), so the cue and the question's end always stay. The reward model and the scorers read the raw texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dynamics.text.encoding import Truncation, tokenize
from dynamics.text.templates import Template

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def last_reply_index(messages: Sequence[dict]) -> int:
    """Index of the last assistant turn; ValueError when there is none (nothing to score a reply against)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "assistant":
            return index
    raise ValueError("the conversation has no assistant turn to compare a generated reply with")


def last_user_text(messages: Sequence[dict]) -> str:
    """The raw text of the user turn the last reply answers ("" when the conversation opens with a reply)."""
    for turn in reversed(messages[: last_reply_index(messages)]):
        if turn["role"] == "user":
            return turn["content"]
    return ""


def encode_prompt(
    messages: Sequence[dict],
    tokenizer: PreTrainedTokenizerBase,
    template: Template,
    max_tokens: int,
    truncation: Truncation = Truncation(),  # noqa: B008 (frozen, so one shared default is safe)
) -> list[int]:
    """Token ids of the conversation before its last reply, at most `max_tokens` (a leading BOS kept)."""
    ids, _ = tokenize(messages[: last_reply_index(messages)], tokenizer, template)
    excess = len(ids) - max_tokens
    if excess <= 0:
        return ids
    kept = 1 if template.starts_with_bos and tokenizer.bos_token_id is not None and ids else 0
    if len(ids) - kept <= excess:
        raise ValueError(f"a prompt budget of {max_tokens} tokens leaves no room for any prompt token")
    head = kept if truncation.mode == "left" else kept + min(truncation.head_tokens, len(ids) - kept - excess)
    return ids[:head] + ids[head + excess :]
