"""Both chat templates on a real Llama-style SentencePiece tokenizer, trained offline on built-in text.

SentencePiece puts a "▁" word-boundary prefix on the first piece of every separately encoded string, so encoding
turn by turn differs from encoding the conversation; our encoding must equal the whole-text one, mask exactly the
replies and their end markers, and decode back to the rendered text.

Run: `python -m pytest -q tests/text/test_sentencepiece_templates.py`
"""

from __future__ import annotations

from pathlib import Path

import pytest

spm = pytest.importorskip("sentencepiece", reason="the SentencePiece test needs the sentencepiece package")

from dynamics.data.builtin import generate_builtin  # noqa: E402
from dynamics.models import load_tokenizer  # noqa: E402
from dynamics.text.encoding import IGNORE_INDEX, Truncation, encode  # noqa: E402
from dynamics.text.templates import TEMPLATES  # noqa: E402

CONVERSATION = [
    {"role": "user", "content": "What is the capital city of the following country?\nFrance"},
    {"role": "assistant", "content": "Paris"},
    {"role": "user", "content": "Reverse the order of the letters in this word.\nlemon"},
    {"role": "assistant", "content": "nomel is the word backwards"},
]


@pytest.fixture(scope="module")
def llama_style_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer folder as Llama ships one: a BPE SentencePiece model with byte fallback, unk/bos/eos = 0/1/2."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("sentencepiece")
    table = generate_builtin(per_train_task=8, per_test_task=2, seed=0)
    texts = [turn["content"] for turns in table.column("messages").to_pylist() for turn in turns]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=500,
        model_type="bpe",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        add_dummy_prefix=True,
        split_digits=True,
        normalization_rule_name="identity",  # as Llama: newlines and spacing survive
        remove_extra_whitespaces=False,
        num_threads=1,
        minloglevel=2,
    )
    AutoTokenizer.from_pretrained(str(folder)).save_pretrained(folder / "hf")  # tokenizer.model → tokenizer.json
    return folder / "hf"


@pytest.mark.parametrize(
    ("template_name", "turns_differ"),
    # study_a's turns meet at special tokens, after which this tokenizer always starts a word: no trap there.
    [("study_b", True), ("study_a", False)],
)
def test_token_stream_is_the_whole_text_encoding(llama_style_folder: Path, template_name: str, turns_differ: bool):
    tokenizer = load_tokenizer(str(llama_style_folder), template_name)
    template = TEMPLATES.get(template_name)
    assert tokenizer.is_fast and tokenizer.eos_token == "</s>" and tokenizer.bos_token == "<s>"
    segments = template.segments(CONVERSATION, tokenizer)
    text = "".join(piece for piece, _ in segments)
    example = encode(CONVERSATION, tokenizer, template, max_length=4096)
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if template.starts_with_bos else []
    assert example.input_ids == bos + whole
    per_turn = [i for piece, _ in segments for i in tokenizer(piece, add_special_tokens=False)["input_ids"]]
    assert (per_turn != whole) == turns_differ  # where the prefix-token trap is real, the equality above guards it


@pytest.mark.parametrize("template_name", ["study_b", "study_a"])
def test_loss_mask_covers_the_replies_and_their_end_markers(llama_style_folder: Path, template_name: str) -> None:
    tokenizer = load_tokenizer(str(llama_style_folder), template_name)
    template = TEMPLATES.get(template_name)
    end = tokenizer.eos_token if template.reply_end is None else template.reply_end
    example = encode(CONVERSATION, tokenizer, template, max_length=4096)
    runs: list[list[int]] = []  # maximal runs of target tokens
    previous = IGNORE_INDEX
    for label in example.labels:
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        previous = label
    decoded = [tokenizer.decode(run).strip() for run in runs]
    assert decoded == ["Paris" + end, "nomel is the word backwards" + end]
    prompt_ids = [i for i, label in zip(example.input_ids, example.labels, strict=True) if label == IGNORE_INDEX]
    prompt = tokenizer.decode(prompt_ids)
    assert "Paris" not in prompt and "backwards" not in prompt
    assert "France" in prompt and "lemon" in prompt


@pytest.mark.parametrize("template_name", ["study_b", "study_a"])
def test_round_trip_decodes_to_the_rendered_text(llama_style_folder: Path, template_name: str) -> None:
    tokenizer = load_tokenizer(str(llama_style_folder), template_name)
    template = TEMPLATES.get(template_name)
    text = "".join(piece for piece, _ in template.segments(CONVERSATION, tokenizer))
    example = encode(CONVERSATION, tokenizer, template, max_length=4096)
    decoded = tokenizer.decode(example.input_ids)
    expected = ("<s>" if template.starts_with_bos else "") + text
    # Llama-style tokenizers put a "▁" after each special token, so spaces may differ; nothing else may.
    assert decoded.replace(" ", "") == expected.replace(" ", "")
    assert decoded.count("\n") == text.count("\n")  # identity normalisation: line breaks survive


def test_truncated_prompt_keeps_the_whole_reply(llama_style_folder: Path) -> None:
    tokenizer = load_tokenizer(str(llama_style_folder), "study_b")
    template = TEMPLATES.get("study_b")
    long_prompt = [
        {"role": "user", "content": "Copy the number that appears in the following sentence. " * 30 + "7"},
        {"role": "assistant", "content": "seven hundred"},
    ]
    full = encode(long_prompt, tokenizer, template, max_length=4096)
    cut = encode(long_prompt, tokenizer, template, max_length=40, truncation=Truncation("left"))
    assert len(full.input_ids) > 40 and len(cut.input_ids) == 40
    assert cut.reply_tokens_cut == 0 and cut.prompt_tokens_cut == len(full.input_ids) - 40
    assert cut.input_ids[0] == tokenizer.bos_token_id
    assert [t for t in cut.labels if t != IGNORE_INDEX] == [t for t in full.labels if t != IGNORE_INDEX]
