"""Tests for reply-only loss masks under each registered template (dynamics.text.encoding, SPEC §3).

Run: `python -m pytest -q tests/text/test_encoding.py`
"""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerBase

from dynamics.models import builtin_tokenizer
from dynamics.text.encoding import IGNORE_INDEX, EncodedExample, Truncation
from dynamics.text.encoding import encode as encode_with
from dynamics.text.templates import STUDY_A_ROLE_TOKENS as ROLE_TOKENS
from dynamics.text.templates import TEMPLATES

SINGLE = [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5, café ✓"}]
MULTI = [
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue"},
    {"role": "user", "content": "Another?"},
    {"role": "assistant", "content": "Green."},
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return builtin_tokenizer()


def _spans(example: EncodedExample) -> list[tuple[bool, list[int]]]:
    """Maximal runs of (is_target, input ids) along the sequence."""
    spans: list[tuple[bool, list[int]]] = []
    for token, label in zip(example.input_ids, example.labels, strict=True):
        is_target = label != IGNORE_INDEX
        if is_target:
            assert label == token  # a target label is the token itself; the loss shifts it
        if spans and spans[-1][0] == is_target:
            spans[-1][1].append(token)
        else:
            spans.append((is_target, [token]))
    return spans


def encode(messages: list[dict], tokenizer: PreTrainedTokenizerBase, template: str, max_length: int):
    """`encode` under the template registered as `template`."""
    return encode_with(messages, tokenizer, TEMPLATES.get(template), max_length)


def _text(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


def test_lengths_match_and_count_is_consistent(tokenizer: PreTrainedTokenizerBase) -> None:
    example = encode(SINGLE, tokenizer, "study_b", max_length=512)
    assert example is not None
    assert len(example.input_ids) == len(example.labels)
    assert example.num_target_tokens == sum(label != IGNORE_INDEX for label in example.labels)


def test_study_b_targets_are_reply_plus_eos(tokenizer: PreTrainedTokenizerBase) -> None:
    example = encode(SINGLE, tokenizer, "study_b", max_length=512)
    assert example is not None
    targets = [label for label in example.labels if label != IGNORE_INDEX]
    assert targets[-1] == tokenizer.eos_token_id
    assert _text(tokenizer, targets[:-1]) == "5, café ✓"
    assert example.num_target_tokens == len("5, café ✓".encode()) + 1


def test_study_b_prompt_is_never_a_target_and_bos_comes_first(tokenizer: PreTrainedTokenizerBase) -> None:
    example = encode(SINGLE, tokenizer, "study_b", max_length=512)
    assert example is not None
    assert example.input_ids[0] == tokenizer.bos_token_id
    assert example.labels[0] == IGNORE_INDEX
    spans = _spans(example)
    assert [is_target for is_target, _ in spans] == [False, True]
    prompt = spans[0][1]
    assert prompt[0] == tokenizer.bos_token_id
    assert _text(tokenizer, prompt[1:]) == "User: Add 2 and 3.\nAssistant: "
    assert tokenizer.bos_token_id not in example.input_ids[1:]


def test_study_b_multi_turn_masks_both_user_turns(tokenizer: PreTrainedTokenizerBase) -> None:
    example = encode(MULTI, tokenizer, "study_b", max_length=512)
    assert example is not None
    spans = _spans(example)
    assert [is_target for is_target, _ in spans] == [False, True, False, True]
    assert _text(tokenizer, spans[0][1][1:]) == "User: Name a colour.\nAssistant: "
    assert _text(tokenizer, spans[1][1]) == "Blue" + tokenizer.eos_token
    assert _text(tokenizer, spans[2][1]) == "User: Another?\nAssistant: "
    assert _text(tokenizer, spans[3][1]) == "Green." + tokenizer.eos_token
    assert example.num_target_tokens == len("Blue") + len("Green.") + 2


def test_role_tokens_are_single_ids(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = [tokenizer(token, add_special_tokens=False)["input_ids"] for token in ROLE_TOKENS]
    assert all(len(token_ids) == 1 for token_ids in ids)
    assert len({token_ids[0] for token_ids in ids}) == 3
    assert tokenizer.eos_token_id not in {token_ids[0] for token_ids in ids}


def test_study_a_uses_role_tokens_and_labels_reply_plus_eot(tokenizer: PreTrainedTokenizerBase) -> None:
    user, assistant, eot = tokenizer.convert_tokens_to_ids(list(ROLE_TOKENS))
    example = encode(SINGLE, tokenizer, "study_a", max_length=512)
    assert example is not None
    spans = _spans(example)
    assert [is_target for is_target, _ in spans] == [False, True]
    prompt, reply = spans[0][1], spans[1][1]
    assert prompt[0] == user and prompt[-1] == assistant
    assert _text(tokenizer, prompt[1:-1]) == "Add 2 and 3."
    assert reply[-1] == eot
    assert _text(tokenizer, reply[:-1]) == "5, café ✓"
    assert tokenizer.eos_token_id not in example.input_ids
    assert tokenizer.bos_token_id not in example.input_ids


def test_study_a_multi_turn(tokenizer: PreTrainedTokenizerBase) -> None:
    user, assistant, eot = tokenizer.convert_tokens_to_ids(list(ROLE_TOKENS))
    example = encode(MULTI, tokenizer, "study_a", max_length=512)
    assert example is not None
    spans = _spans(example)
    assert [is_target for is_target, _ in spans] == [False, True, False, True]
    assert spans[2][1][0] == user and spans[2][1][-1] == assistant
    assert [ids[-1] for is_target, ids in spans if is_target] == [eot, eot]
    assert _text(tokenizer, spans[3][1][:-1]) == "Green."


def _prompt_and_reply(example: EncodedExample) -> tuple[list[int], list[int]]:
    first_target = next(i for i, label in enumerate(example.labels) if label != IGNORE_INDEX)
    return example.input_ids[:first_target], example.input_ids[first_target:]


LONG = [{"role": "user", "content": "Instruction: add. " + "context " * 20}, {"role": "assistant", "content": "42"}]


@pytest.mark.parametrize("template", ["study_b", "study_a"])
def test_a_prompt_longer_than_max_length_keeps_its_whole_reply(tokenizer, template: str) -> None:
    full = encode(LONG, tokenizer, template, max_length=10_000)
    prompt, reply = _prompt_and_reply(full)
    example = encode(LONG, tokenizer, template, max_length=len(reply) + 10)
    assert example is not None and len(example.input_ids) == len(reply) + 10
    assert example.input_ids[-len(reply) :] == reply  # the whole reply, end marker included
    assert example.num_target_tokens == full.num_target_tokens
    assert example.prompt_tokens_cut == len(full.input_ids) - len(example.input_ids) and example.reply_tokens_cut == 0
    kept_prompt = example.input_ids[: -len(reply)]
    if template == "study_b":  # BOS stays; the prompt loses its left: what is left is the prompt's end
        assert kept_prompt[0] == tokenizer.bos_token_id
        assert kept_prompt[1:] == prompt[len(prompt) - len(kept_prompt) + 1 :]
        assert "context \nAssistant: ".endswith(_text(tokenizer, kept_prompt[1:]))
    else:
        assert kept_prompt == prompt[len(prompt) - len(kept_prompt) :]


def test_middle_truncation_keeps_the_instruction_head(tokenizer) -> None:
    full = encode(LONG, tokenizer, "study_b", max_length=10_000)
    prompt, reply = _prompt_and_reply(full)
    middle = Truncation(mode="middle", head_tokens=len("User: Instruction: add."))
    example = encode_with(LONG, tokenizer, TEMPLATES.get("study_b"), len(reply) + 40, middle)
    assert example is not None and example.input_ids[-len(reply) :] == reply
    kept_prompt = example.input_ids[: -len(reply)]
    assert _text(tokenizer, kept_prompt[1:]).startswith("User: Instruction: add.")  # the head survives
    assert _text(tokenizer, kept_prompt[1:]).endswith("\nAssistant: ")  # and the prompt's end
    assert len(kept_prompt) == 40


def test_the_reply_is_cut_only_once_no_prompt_token_is_left(tokenizer) -> None:
    conversation = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a long answer " * 3}]
    full = encode(conversation, tokenizer, "study_b", max_length=10_000)
    prompt, reply = _prompt_and_reply(full)
    example = encode(conversation, tokenizer, "study_b", max_length=10)
    assert example is not None
    assert example.input_ids == [tokenizer.bos_token_id, *reply[:9]]  # every prompt token gone, BOS kept
    assert example.prompt_tokens_cut == len(prompt) - 1 and example.reply_tokens_cut == len(reply) - 9


def test_in_a_multi_turn_conversation_earlier_turns_are_the_context_cut_first(tokenizer) -> None:
    full = encode(MULTI, tokenizer, "study_b", max_length=10_000)
    last_reply = _spans(full)[-1][1]
    example = encode(MULTI, tokenizer, "study_b", max_length=len(last_reply) + 12)
    assert example is not None
    assert example.input_ids[-len(last_reply) :] == last_reply
    assert example.num_target_tokens == len(last_reply)  # the first reply was context, and is gone
    assert _text(tokenizer, example.input_ids[1 : -len(last_reply)]) == "Another?\nAssistant: "[-11:]


def test_only_a_conversation_without_any_target_is_dropped(tokenizer) -> None:
    no_reply = [{"role": "user", "content": "q"}]
    assert encode(no_reply, tokenizer, "study_a", max_length=64) is None
    assert encode(LONG, tokenizer, "study_b", max_length=8) is not None  # even at the smallest max_length
