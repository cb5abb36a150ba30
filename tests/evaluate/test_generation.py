"""Batched decoding: equal, token for token, to decoding each prompt alone; stops, budget, seeded sampling."""

from __future__ import annotations

import pytest
import torch

from dynamics.config import BuiltinModelConfig
from dynamics.evaluate.generation import Decoding, ShardedGenerator, Stops, generate_batch, left_padded
from dynamics.models import build_builtin_model, builtin_tokenizer
from dynamics.text.prompts import encode_prompt
from dynamics.text.templates import TEMPLATES

SIZES = BuiltinModelConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4)


@pytest.fixture(scope="module")
def tokenizer():
    return builtin_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_builtin_model(SIZES, vocab_size=len(tokenizer)).eval()  # fp32


def _prompts(tokenizer, count: int) -> list[list[int]]:
    template = TEMPLATES.get("study_b")
    conversations = [
        [{"role": "user", "content": f"question {k}: " + "word " * (k % 9)}, {"role": "assistant", "content": "x"}]
        for k in range(count)
    ]
    return [encode_prompt(messages, tokenizer, template, 200) for messages in conversations]


def test_batched_greedy_decoding_equals_one_prompt_at_a_time(model, tokenizer) -> None:
    prompts = _prompts(tokenizer, 24)  # 9 different lengths: every batch is left-padded
    stops = Stops.of(TEMPLATES.get("study_b"), tokenizer)
    decoding = Decoding(max_new_tokens=24)
    generator = ShardedGenerator(prompts, batch_size=8, rank=0, world_size=1)
    batched = dict(zip(generator.positions, generator.run(model, tokenizer, stops, decoding), strict=True))
    for index, prompt in enumerate(prompts):
        alone = generate_batch(model, [prompt], tokenizer, stops, decoding)[0]
        assert batched[index].token_ids == alone.token_ids, f"prompt {index}"
        assert batched[index].text == alone.text
    assert sum(len(reply.token_ids) for reply in batched.values()) > 0


def test_left_padding_puts_every_prompt_at_the_right_edge() -> None:
    input_ids, attention_mask = left_padded([[5, 6, 7], [8]], pad_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]


class FakeScriptedModel(torch.nn.Module):
    """Emits a fixed token script whatever the input (greedy over one-hot logits), to test stops and budgets."""

    def __init__(self, script: list[int], vocab_size: int):
        super().__init__()
        from types import SimpleNamespace

        self.script, self.vocab_size = script, vocab_size
        self.config = SimpleNamespace(vocab_size=vocab_size)  # what generate_batch reads of a model's config
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def generate(self, input_ids, attention_mask, generation_config, synced_gpus, logits_processor=(), **_):
        from types import SimpleNamespace

        budget = generation_config.max_new_tokens
        new = self.script[:budget]
        stops = set(generation_config.eos_token_id)
        if any(token in stops for token in new):
            new = new[: next(i for i, t in enumerate(new) if t in stops) + 1]
        rows = torch.tensor([new] * input_ids.size(0), dtype=torch.long)
        for step in range(rows.size(1)):  # as generate does: every processor sees every position's scores
            scores = torch.nn.functional.one_hot(rows[:, step], self.vocab_size).float()
            for processor in logits_processor:
                scores = processor(input_ids, scores)
        return SimpleNamespace(sequences=torch.cat([input_ids, rows], dim=1))


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_a_reply_stops_at_the_end_marker_and_before_a_role_marker(tokenizer) -> None:
    stops = Stops.of(TEMPLATES.get("study_b"), tokenizer)
    assert stops.texts == ("</s>", "\nUser:", "\nAssistant:")
    eos = tokenizer.eos_token_id
    ended = FakeScriptedModel([*_ids(tokenizer, "Paris"), eos, *_ids(tokenizer, "more")], len(tokenizer))
    reply = generate_batch(ended, [[5]], tokenizer, stops, Decoding(max_new_tokens=20))[0]
    assert (reply.text, reply.hit_budget) == ("Paris", False)
    assert reply.token_ids == _ids(tokenizer, "Paris")
    next_turn = FakeScriptedModel(_ids(tokenizer, "Rome\nUser: and"), len(tokenizer))
    reply = generate_batch(next_turn, [[5]], tokenizer, stops, Decoding(max_new_tokens=40))[0]
    assert (reply.text, reply.hit_budget) == ("Rome", False)


def test_a_reply_longer_than_the_budget_is_cut_and_says_so(tokenizer) -> None:
    stops = Stops.of(TEMPLATES.get("study_b"), tokenizer)
    model = FakeScriptedModel(_ids(tokenizer, "a long answer that goes on"), len(tokenizer))
    reply = generate_batch(model, [[5]], tokenizer, stops, Decoding(max_new_tokens=6))[0]
    assert (reply.text, reply.hit_budget, len(reply.token_ids)) == ("a long", True, 6)


def test_study_a_stops_on_its_role_tokens(tokenizer) -> None:
    stops = Stops.of(TEMPLATES.get("study_a"), tokenizer)
    eot, user = tokenizer.convert_tokens_to_ids(["<eot>", "<user>"])
    assert {eot, user} <= set(stops.token_ids) and not stops.multi_token_texts
    model = FakeScriptedModel([*_ids(tokenizer, "B"), user, *_ids(tokenizer, "x")], len(tokenizer))
    assert generate_batch(model, [[5]], tokenizer, stops, Decoding(max_new_tokens=9))[0].text == "B"


def test_watched_logits_are_those_of_the_first_reply_position(tokenizer) -> None:
    stops = Stops.of(TEMPLATES.get("study_b"), tokenizer)
    a, b = _ids(tokenizer, "A")[0], _ids(tokenizer, "B")[0]
    model = FakeScriptedModel([b, a], len(tokenizer))
    reply = generate_batch(model, [[5]], tokenizer, stops, Decoding(max_new_tokens=2), watched_ids=[a, b])[0]
    assert reply.first_logits == [0.0, 1.0]


def test_sampling_is_seeded_and_leaves_the_training_rng_alone(model, tokenizer) -> None:
    prompts = _prompts(tokenizer, 4)
    stops = Stops.of(TEMPLATES.get("study_b"), tokenizer)
    sampled = Decoding(max_new_tokens=16, do_sample=True, temperature=1.0, seed=3)
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    first = generate_batch(model, prompts, tokenizer, stops, sampled)
    assert torch.equal(torch.random.get_rng_state(), before)
    again = generate_batch(model, prompts, tokenizer, stops, sampled)
    other = generate_batch(model, prompts, tokenizer, stops, Decoding(16, True, 1.0, 1.0, seed=4))
    assert [r.token_ids for r in first] == [r.token_ids for r in again]
    assert [r.token_ids for r in first] != [r.token_ids for r in other]


def test_every_rank_makes_as_many_generate_calls_as_the_busiest() -> None:
    prompts = [[1] * length for length in (3, 3, 3, 3, 3, 40, 41)]  # rank 0 gets the long ones: 2 batches
    calls = []

    class FakeCountingModel(FakeScriptedModel):
        def generate(self, input_ids, **kwargs):
            calls.append(input_ids.size(0))
            return super().generate(input_ids, **kwargs)

    tokenizer = builtin_tokenizer()
    model = FakeCountingModel([65], len(tokenizer))
    stops = Stops.of(TEMPLATES.get("study_b"), tokenizer)
    counts = []
    for rank in (0, 1, 2):
        calls.clear()
        generator = ShardedGenerator(prompts, batch_size=2, rank=rank, world_size=3)
        replies = generator.run(model, tokenizer, stops, Decoding(max_new_tokens=1))
        assert len(replies) == len(generator.positions)
        counts.append(len(calls))
    assert counts[0] == counts[1] == counts[2] >= 2


def test_watched_logits_equal_the_models_own_at_the_reply_start(model, tokenizer) -> None:
    prompt = _prompts(tokenizer, 3)[2]
    watched = [_ids(tokenizer, letter)[0] for letter in "ABCD"]
    stops = Stops.of(TEMPLATES.get("study_b"), tokenizer)
    reply = generate_batch(model, [prompt], tokenizer, stops, Decoding(max_new_tokens=3), watched_ids=watched)[0]
    with torch.inference_mode():
        expected = model(input_ids=torch.tensor([prompt])).logits[0, -1, watched]
    assert reply.first_logits == pytest.approx(expected.tolist(), abs=1e-5)


def test_a_vocabulary_padded_past_the_tokenizer_never_generates_the_padding(tokenizer) -> None:
    padded = build_builtin_model(SIZES, vocab_size=4 * len(tokenizer)).eval()  # 3/4 of the rows: no token at all
    prompts = _prompts(tokenizer, 8)
    with torch.inference_mode():
        first_choices = [int(padded(input_ids=torch.tensor([prompt])).logits[0, -1].argmax()) for prompt in prompts]
    assert any(choice >= len(tokenizer) for choice in first_choices)  # unmasked, greedy decoding would pick them
    stops = Stops.of(TEMPLATES.get("study_b"), tokenizer)
    replies = generate_batch(padded, prompts, tokenizer, stops, Decoding(max_new_tokens=12))
    assert all(token < len(tokenizer) for reply in replies for token in reply.token_ids)
    assert all(len(reply.token_ids) > 0 or not reply.hit_budget for reply in replies)
