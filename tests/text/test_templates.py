"""The template registry (dynamics.text.templates): what each registered template writes and masks.

Run: `python -m pytest -q tests/text/test_templates.py`
"""

from __future__ import annotations

import pytest

from dynamics.models import builtin_tokenizer, load_tokenizer
from dynamics.registry import UnknownName
from dynamics.text.templates import STUDY_A_ROLE_TOKENS, TEMPLATES

TURNS = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]


def test_both_studies_templates_are_registered() -> None:
    assert {"study_a", "study_b", "alpaca"} <= set(TEMPLATES.names())


def test_unknown_template_names_the_closest_and_the_known_ones() -> None:
    with pytest.raises(UnknownName, match=r"unknown template 'study_c'; did you mean 'study_[ab]'\? known: .*study_a"):
        TEMPLATES.get("study_c")


def test_study_b_segments_end_replies_with_the_tokenizers_eos() -> None:
    tokenizer = builtin_tokenizer()
    assert TEMPLATES.get("study_b").segments(TURNS, tokenizer) == [
        ("User: Q?\nAssistant: ", False),
        ("A." + tokenizer.eos_token, True),
    ]


def test_study_a_segments_use_its_role_tokens() -> None:
    assert TEMPLATES.get("study_a").segments(TURNS, builtin_tokenizer()) == [
        ("<user>Q?<assistant>", False),
        ("A.<eot>", True),
    ]


def test_a_template_adds_the_tokens_it_needs_to_any_tokenizer(tmp_path) -> None:
    # A real tokenizer saved without Study A's role tokens gains them when loaded for study_a, not for study_b.
    from transformers import ByT5Tokenizer

    ByT5Tokenizer().save_pretrained(tmp_path)
    plain = load_tokenizer(str(tmp_path), "study_b")
    with_roles = load_tokenizer(str(tmp_path), "study_a")
    assert not set(STUDY_A_ROLE_TOKENS) & set(plain.get_vocab())
    assert set(STUDY_A_ROLE_TOKENS) <= set(with_roles.get_vocab())
    assert len(with_roles) == len(plain) + len(STUDY_A_ROLE_TOKENS)


def test_alpaca_wraps_the_instruction_in_its_preamble_and_masks_only_the_response() -> None:
    from dynamics.text.encoding import IGNORE_INDEX, encode

    tokenizer = builtin_tokenizer()
    alpaca = TEMPLATES.get("alpaca")
    prompt, reply = alpaca.segments(TURNS, tokenizer)
    assert prompt == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nQ?\n\n### Response:\n",
        False,
    )
    assert reply == ("A." + tokenizer.eos_token, True)
    example = encode(TURNS, tokenizer, alpaca, max_length=512)
    assert example is not None and example.input_ids[0] == tokenizer.bos_token_id
    targets = [label for label in example.labels if label != IGNORE_INDEX]
    assert tokenizer.decode(targets) == "A." + tokenizer.eos_token
