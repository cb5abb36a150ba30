"""Chat templates by name (SPEC §3): how a conversation becomes text, and which of it is a training target.

A template wraps each user turn in a prefix and a suffix and ends each reply with an end marker; only
replies and their end markers are targets. Configs name one in `train.template`; register another here.

    TEMPLATES.get("study_b").segments(messages, tokenizer)   # [(text, is_target), …]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dynamics.registry import Registry

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

STUDY_A_ROLE_TOKENS = ("<user>", "<assistant>", "<eot>")  # added to the vocabulary (embeddings resized)


@dataclass(frozen=True)
class Template:
    """One chat format: user turn = `user_prefix` + content + `user_suffix`; reply = content + `reply_end`."""

    description: str
    user_prefix: str
    user_suffix: str
    reply_end: str | None  # None: the tokenizer's EOS token
    starts_with_bos: bool  # a BOS token first, when the tokenizer has one
    added_tokens: tuple[str, ...] = ()  # special tokens the tokenizer must gain for this template
    role_markers: tuple[str, ...] = ()  # texts that open a turn: a generated reply stops before any of them

    def segments(self, messages: Sequence[dict], tokenizer: PreTrainedTokenizerBase) -> list[tuple[str, bool]]:
        """(text, is_target) pieces of one conversation, end markers included."""
        end = tokenizer.eos_token if self.reply_end is None else self.reply_end
        pieces: list[tuple[str, bool]] = []
        for turn in messages:
            if turn["role"] == "user":
                pieces.append((self.user_prefix + turn["content"] + self.user_suffix, False))
            else:
                pieces.append((turn["content"] + end, True))
        return pieces

    def stop_texts(self, tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
        """Texts a generated reply ends before: its end marker, then every role marker."""
        end = tokenizer.eos_token if self.reply_end is None else self.reply_end
        return tuple(text for text in (end, *self.role_markers) if text)


TEMPLATES: Registry[Template] = Registry("template")

TEMPLATES.add(
    "study_b",
    Template(
        description="Study B: BOS, 'User: {x}\\nAssistant: ', then the reply and EOS.",
        user_prefix="User: ",
        user_suffix="\nAssistant: ",
        reply_end=None,
        starts_with_bos=True,
        role_markers=("\nUser:", "\nAssistant:"),
    ),
)
TEMPLATES.add(
    "study_a",
    Template(
        description="Study A: added role tokens, '<user>{x}<assistant>', then the reply and '<eot>'.",
        user_prefix="<user>",
        user_suffix="<assistant>",
        reply_end="<eot>",
        starts_with_bos=False,
        added_tokens=STUDY_A_ROLE_TOKENS,
        role_markers=("<user>", "<assistant>"),
    ),
)
TEMPLATES.add(
    "alpaca",
    Template(
        description="Stanford Alpaca's prompt: the task preamble, '### Instruction:', then '### Response:' and EOS.",
        user_prefix=(
            "Below is an instruction that describes a task. Write a response that appropriately completes "
            "the request.\n\n### Instruction:\n"
        ),
        user_suffix="\n\n### Response:\n",
        reply_end=None,
        starts_with_bos=True,
        role_markers=("### Instruction:", "### Response:"),
    ),
)
