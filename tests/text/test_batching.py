"""Tests for dynamic padding and token NLL (dynamics.text.batching) and per-task test loss
(dynamics.evaluate.loss, SPEC §4).

Run: `python -m pytest -q tests/text/test_batching.py`
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dynamics.evaluate import loss
from dynamics.text.batching import collate, kept_token_nll, predicting_columns, token_nll
from dynamics.text.encoding import IGNORE_INDEX, EncodedExample

PAD = 0
VOCAB = 7
HALF_MARK = 6  # first token of examples that FakeHalfConfidentModel scores with probability 1/2


def _example(input_ids: list[int], targets_from: int) -> EncodedExample:
    """An example whose tokens from `targets_from` on are targets."""
    labels = [IGNORE_INDEX] * targets_from + input_ids[targets_from:]
    return EncodedExample(input_ids, labels)


class FakeUniformModel:
    """Zero logits: every next token has probability 1/VOCAB, so each target costs log(VOCAB)."""

    def __call__(self, batch: dict[str, torch.Tensor], columns: torch.Tensor | None = None) -> torch.Tensor:
        batch_size, length = batch["input_ids"].shape
        logits = torch.zeros((batch_size, length, VOCAB))
        return logits if columns is None else logits[:, columns]


class FakeHalfConfidentModel:
    """Uniform, except on rows starting with HALF_MARK, where the true next token gets probability exactly 1/2."""

    def __call__(self, batch: dict[str, torch.Tensor], columns: torch.Tensor | None = None) -> torch.Tensor:
        input_ids = batch["input_ids"]
        logits = torch.zeros((*input_ids.shape, VOCAB))
        # One logit of log(V-1) against V-1 zeros: e^a / (e^a + V - 1) = 1/2.
        boost = math.log(VOCAB - 1)
        for row in range(input_ids.shape[0]):
            if input_ids[row, 0] != HALF_MARK:
                continue
            for position in range(input_ids.shape[1] - 1):
                logits[row, position, input_ids[row, position + 1]] = boost
        return logits if columns is None else logits[:, columns]


# --- collate ---------------------------------------------------------------------------------------------


def test_collate_pads_to_the_longest_example_of_the_batch() -> None:
    examples = [_example([1, 2, 3], 1), _example([4, 5, 6, 5, 4], 3), _example([2, 2], 1)]
    batch = collate(examples, pad_token_id=PAD)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert all(tensor.shape == (3, 5) and tensor.dtype == torch.long for tensor in batch.values())
    assert batch["input_ids"].tolist() == [[1, 2, 3, 0, 0], [4, 5, 6, 5, 4], [2, 2, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch["labels"].tolist() == [
        [-100, 2, 3, -100, -100],
        [-100, -100, -100, 5, 4],
        [-100, 2, -100, -100, -100],
    ]


def test_collate_does_not_pad_beyond_the_batch() -> None:
    batch = collate([_example([1, 2], 1), _example([3, 4], 1)], pad_token_id=PAD)
    assert batch["input_ids"].shape == (2, 2)
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 1]]


def test_collate_uses_the_given_pad_id() -> None:
    batch = collate([_example([1, 2, 3], 1), _example([4], 0)], pad_token_id=9)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["labels"].tolist()[1] == [4, -100, -100]


# --- token_nll -------------------------------------------------------------------------------------------


def _log_softmax(row: list[float], index: int) -> float:
    return row[index] - math.log(sum(math.exp(value) for value in row))


def test_token_nll_matches_hand_computed_cross_entropy() -> None:
    logits = [
        [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [100.0, -100.0, 0.0]],
        [[1.0, 1.0, 1.0], [-2.0, 4.0, 0.5], [0.0, 0.0, 50.0]],
    ]
    labels = [[IGNORE_INDEX, 2, 0], [IGNORE_INDEX, IGNORE_INDEX, 1]]
    nll_sum, count = token_nll(torch.tensor(logits), torch.tensor(labels))
    # Row 0: position 0 predicts label 2, position 1 predicts label 0; the last logits predict nothing.
    row0 = -_log_softmax(logits[0][0], 2) - _log_softmax(logits[0][1], 0)
    # Row 1: only position 1 predicts a target (label 1); the -100 labels add nothing.
    row1 = -_log_softmax(logits[1][1], 1)
    assert nll_sum.dtype == torch.float32 and count.dtype == torch.float32
    assert nll_sum.tolist() == pytest.approx([row0, row1], rel=1e-5, abs=1e-6)
    assert count.tolist() == [2.0, 1.0]


def test_token_nll_ignores_padding_and_first_label() -> None:
    logits = torch.randn((1, 4, 5), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[3, 1, IGNORE_INDEX, IGNORE_INDEX]])  # a label at position 0 is never predicted
    nll_sum, count = token_nll(logits, labels)
    expected = -torch.log_softmax(logits[0, 0], dim=-1)[1]
    assert count.tolist() == [1.0]
    assert nll_sum.item() == pytest.approx(expected.item(), rel=1e-6)


def test_token_nll_upcasts_half_precision_logits() -> None:
    logits = torch.zeros((1, 3, VOCAB), dtype=torch.bfloat16)
    nll_sum, count = token_nll(logits, torch.tensor([[IGNORE_INDEX, 1, 2]]))
    assert nll_sum.dtype == torch.float32
    assert nll_sum.item() == pytest.approx(2 * math.log(VOCAB), rel=1e-6)
    assert count.item() == 2.0


def test_uniform_logits_cost_log_vocab_per_token() -> None:
    batch = collate([_example([1, 2, 3, 4], 1), _example([5, 4], 1)], pad_token_id=PAD)
    nll_sum, count = token_nll(FakeUniformModel()(batch), batch["labels"])
    assert count.tolist() == [3.0, 1.0]
    assert nll_sum.tolist() == pytest.approx([3 * math.log(VOCAB), math.log(VOCAB)], rel=1e-6)


def test_half_confident_fake_costs_log_two_per_token() -> None:
    batch = collate([_example([HALF_MARK, 2, 3, 4], 1)], pad_token_id=PAD)
    nll_sum, count = token_nll(FakeHalfConfidentModel()(batch), batch["labels"])
    assert nll_sum.item() == pytest.approx(3 * math.log(2), rel=1e-6)


def test_kept_columns_give_the_full_nll() -> None:
    examples = [_example([HALF_MARK, 2, 3, 4, 1], 3), _example([5, 4, 3], 1), _example([HALF_MARK, 1], 1)]
    batch = collate(examples, pad_token_id=PAD)
    columns = predicting_columns(batch["labels"])
    assert columns.tolist() == [0, 1, 2, 3]  # column 4 predicts nothing: no row has a target after it
    full = token_nll(FakeHalfConfidentModel()(batch), batch["labels"])
    kept = kept_token_nll(FakeHalfConfidentModel()(batch, columns), batch["labels"], columns)
    assert torch.allclose(full[0], kept[0]) and torch.equal(full[1], kept[1])
    late = collate([_example([1, 2, 3, 4, 5, 6], 4)], pad_token_id=PAD)
    assert predicting_columns(late["labels"]).tolist() == [3, 4]  # the prompt's logits are never computed


# --- TestLossEvaluator -----------------------------------------------------------------------------------


def _item(input_ids: list[int], task: str, category: str) -> loss.TestItem:
    return loss.TestItem(_example(input_ids, 1), task, category)


def test_uniform_model_gives_log_vocab_everywhere() -> None:
    items = [
        _item([1, 2, 3], "add", "arithmetic"),
        _item([1, 2, 3, 4, 5], "add", "arithmetic"),
        _item([2, 3], "negate", "arithmetic"),
        _item([3, 4, 4, 4], "capital", "facts"),
    ]
    evaluator = loss.TestLossEvaluator(items, batch_size=3, rank=0, world_size=1, pad_id=PAD)
    metrics = evaluator.evaluate(FakeUniformModel())
    log_v = math.log(VOCAB)
    assert set(metrics) == {
        "test_loss/task/add",
        "test_loss/task/capital",
        "test_loss/task/negate",
        "test_loss/category/arithmetic",
        "test_loss/category/facts",
        "test_loss/macro",
        "test_loss/micro",
    }
    for value in metrics.values():
        assert value == pytest.approx(log_v, rel=1e-6)


def test_macro_and_micro_weight_tasks_and_examples_differently() -> None:
    items = [
        # Task "long" (category x): 3 uniform examples -> mean log V.
        _item([1, 2, 3], "long", "x"),
        _item([2, 3, 4, 5], "long", "x"),
        _item([3, 4], "long", "x"),
        # Task "short" (category x): 1 half-confident example -> mean log 2.
        _item([HALF_MARK, 1, 2, 3, 4, 5], "short", "x"),
        # Task "mixed" (category y): one uniform and one half-confident example of different lengths. Example
        # means are averaged, so the task mean is (log V + log 2) / 2 however many tokens each has.
        _item([1, 2], "mixed", "y"),
        _item([HALF_MARK, 5, 4, 3, 2, 1, 2, 3], "mixed", "y"),
    ]
    evaluator = loss.TestLossEvaluator(items, batch_size=4, rank=0, world_size=1, pad_id=PAD)
    metrics = evaluator.evaluate(FakeHalfConfidentModel())
    log_v, log_2 = math.log(VOCAB), math.log(2)
    long, short, mixed = log_v, log_2, (log_v + log_2) / 2
    assert metrics["test_loss/task/long"] == pytest.approx(long, rel=1e-6)
    assert metrics["test_loss/task/short"] == pytest.approx(short, rel=1e-6)
    assert metrics["test_loss/task/mixed"] == pytest.approx(mixed, rel=1e-6)
    assert metrics["test_loss/category/x"] == pytest.approx((long + short) / 2, rel=1e-6)
    assert metrics["test_loss/category/y"] == pytest.approx(mixed, rel=1e-6)
    assert metrics["test_loss/macro"] == pytest.approx((long + short + mixed) / 3, rel=1e-6)
    assert metrics["test_loss/micro"] == pytest.approx((4 * log_v + 2 * log_2) / 6, rel=1e-6)
    assert metrics["test_loss/macro"] != pytest.approx(metrics["test_loss/micro"], rel=1e-3)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_result_does_not_depend_on_eval_batch_size(batch_size: int) -> None:
    items = [
        _item([1, 2, 3], "a", "c"),
        _item([HALF_MARK, 2], "a", "c"),
        _item([HALF_MARK, 1, 1, 1, 1, 1], "b", "c"),
        _item([4, 4, 4, 4], "b", "c"),
        _item([5, 5], "b", "c"),
    ]
    evaluator = loss.TestLossEvaluator(items, batch_size=batch_size, rank=0, world_size=1, pad_id=PAD)
    metrics = evaluator.evaluate(FakeHalfConfidentModel())
    log_v, log_2 = math.log(VOCAB), math.log(2)
    assert metrics["test_loss/task/a"] == pytest.approx((log_v + log_2) / 2, rel=1e-6)
    assert metrics["test_loss/task/b"] == pytest.approx((log_2 + 2 * log_v) / 3, rel=1e-6)
    assert metrics["test_loss/micro"] == pytest.approx((3 * log_v + 2 * log_2) / 5, rel=1e-6)


def test_forward_runs_once_per_batch() -> None:
    calls: list[tuple[int, int]] = []

    def forward(batch: dict[str, torch.Tensor], columns: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(batch["input_ids"].shape))
        return FakeUniformModel()(batch, columns)

    items = [_item([1] * length, "t", "c") for length in (2, 3, 4, 5, 6)]
    loss.TestLossEvaluator(items, batch_size=2, rank=0, world_size=1, pad_id=PAD).evaluate(forward)
    # Sorted, at most 2 per batch, and [2, 3] would pad 6 tokens for 5 real ones (> 1.15×): its own batch.
    assert calls == [(1, 2), (2, 4), (2, 6)]


@given(st.lists(st.integers(1, 300), min_size=1, max_size=80), st.integers(1, 16))
def test_padding_bounded_batches_cover_everything_within_the_bounds(lengths: list[int], batch_size: int) -> None:
    lengths.sort()
    batches = loss.padding_bounded_batches(lengths, batch_size)
    assert [i for begin, end in batches for i in range(begin, end)] == list(range(len(lengths)))
    for begin, end in batches:
        chunk = lengths[begin:end]
        assert 1 <= len(chunk) <= batch_size
        assert len(chunk) == 1 or len(chunk) * max(chunk) <= loss.PADDING_SLACK * sum(chunk) + 1e-9


def test_every_rank_runs_the_same_number_of_forwards() -> None:
    # Rank 0 gets lengths 1, 3, 30 (spread: 3 batches); rank 1 gets 2, 4, 31 (the same), both as many forwards.
    items = [_item([1] * length + [2], "t", "c") for length in (1, 2, 3, 4, 30, 31)]
    counts = []
    for rank in (0, 1):
        calls = []

        def forward(batch: dict[str, torch.Tensor], columns: torch.Tensor) -> torch.Tensor:
            calls.append(batch["input_ids"].shape[0])  # noqa: B023 (called before the loop moves on)
            return FakeUniformModel()(batch, columns)

        evaluator = loss.TestLossEvaluator(items, batch_size=8, rank=rank, world_size=2, pad_id=PAD)
        evaluator._nll._world_size = 1  # score this rank's shard alone (no process group in a unit test)
        evaluator.evaluate(forward)
        counts.append(len(calls))
    assert counts[0] == counts[1] >= 2


def test_empty_test_items_raise() -> None:
    with pytest.raises(ValueError, match="test set is empty"):
        loss.TestLossEvaluator([], batch_size=4, rank=0, world_size=1, pad_id=PAD)


def test_items_carrying_an_ability_get_a_loss_per_ability_under_the_sets_prefix() -> None:
    items = [
        # Ability "math": one uniform and one half-confident example: (log V + log 2) / 2, items weighted equally.
        loss.TestItem(_example([1, 2, 3], 1), "algebra", "math", "math"),
        loss.TestItem(_example([HALF_MARK, 1, 2, 3, 4, 5], 1), "geometry", "math", "math"),
        # Ability "history": one half-confident example; an unlabelled item counts in no ability.
        loss.TestItem(_example([HALF_MARK, 3, 4], 1), "dates", "history", "history"),
        loss.TestItem(_example([2, 3], 1), "misc", "other", None),
    ]
    evaluator = loss.TestLossEvaluator(items, batch_size=2, rank=0, world_size=1, pad_id=PAD, prefix="valid")
    metrics = evaluator.evaluate(FakeHalfConfidentModel())
    log_v, log_2 = math.log(VOCAB), math.log(2)
    assert metrics["valid_loss/ability/math"] == pytest.approx((log_v + log_2) / 2, rel=1e-6)
    assert metrics["valid_loss/ability/history"] == pytest.approx(log_2, rel=1e-6)
    assert {key for key in metrics if "/ability/" in key} == {"valid_loss/ability/math", "valid_loss/ability/history"}
    assert metrics["valid_loss/macro"] == pytest.approx((log_v + log_2 + log_2 + log_v) / 4, rel=1e-6)
    assert not any(key.startswith("test_") for key in metrics)
