"""Tests for reply-only loss masks under each registered template (dynamics.text.encoding, SPEC §3).

Run: `python -m pytest -q tests/text/test_encoding.py`
"""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerBase

from dynamics.models import builtin_tokenizer
from dynamics.text.encoding import IGNORE_INDEX, EncodedExample
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


def test_truncation_into_the_reply_keeps_surviving_reply_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    conversation = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "hello"}]
    prompt_length = 1 + len("User: q\nAssistant: ")  # BOS + one id per byte
    example = encode(conversation, tokenizer, "study_b", max_length=prompt_length + 3)
    assert example is not None
    assert len(example.input_ids) == len(example.labels) == prompt_length + 3
    assert example.num_target_tokens == 3
    assert _text(tokenizer, example.labels[prompt_length:]) == "hel"
    assert set(example.labels[:prompt_length]) == {IGNORE_INDEX}


def test_truncation_in_second_turn_keeps_first_reply(tokenizer: PreTrainedTokenizerBase) -> None:
    full = encode(MULTI, tokenizer, "study_b", max_length=512)
    assert full is not None
    cut = len(_spans(full)[0][1]) + len(_spans(full)[1][1]) + 4  # first prompt, first reply, 4 prompt ids
    example = encode(MULTI, tokenizer, "study_b", max_length=cut)
    assert example is not None
    assert example.input_ids == full.input_ids[:cut]
    assert example.num_target_tokens == len("Blue") + 1


@pytest.mark.parametrize("template", ["study_b", "study_a"])
def test_truncation_that_removes_every_reply_token_returns_none(
    tokenizer: PreTrainedTokenizerBase, template: str
) -> None:
    conversation = [{"role": "user", "content": "a long question " * 4}, {"role": "assistant", "content": "ok"}]
    full = encode(conversation, tokenizer, template, max_length=512)
    assert full is not None
    prompt_length = next(i for i, label in enumerate(full.labels) if label != IGNORE_INDEX)
    assert encode(conversation, tokenizer, template, max_length=prompt_length) is None
    assert encode(conversation, tokenizer, template, max_length=prompt_length + 1) is not None
