"""Generation metrics of one in-loop group on the tiny model: scores recomputed here from outside the runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from rouge_score import rouge_scorer

from dynamics.config import BuiltinModelConfig, EvaluateConfig, RewardModelConfig
from dynamics.data.builtin import generate_builtin
from dynamics.evaluate.generation import Decoding, Stops, generate_batch
from dynamics.evaluate.in_loop import GenerationEvaluator, eval_items
from dynamics.evaluate.runner import GenerationGroup, InLoopEvaluation
from dynamics.models import build_builtin_model, builtin_tokenizer
from dynamics.models.reward import RewardScorer, load_reward_model, materialise_reward_model
from dynamics.text.encoding import Truncation
from dynamics.text.templates import TEMPLATES

SIZES = BuiltinModelConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    tokenizer = builtin_tokenizer()
    model = build_builtin_model(SIZES, vocab_size=len(tokenizer)).eval()
    rows = [row for row in generate_builtin(1, 3, seed=0).to_pylist() if row["split"] == "test"]
    folder = materialise_reward_model(RewardModelConfig(builtin=SIZES), tmp_path_factory.mktemp("rm"))
    loaded = load_reward_model(folder)
    return tokenizer, model, rows, RewardScorer(loaded.model, loaded.tokenizer, batch_size=8)


def test_a_group_reports_what_the_replies_score_when_scored_by_hand(setting) -> None:
    tokenizer, model, rows, reward = setting
    template = TEMPLATES.get("study_b")
    items = eval_items(rows, tokenizer, template, 256, Truncation())
    names = ["rouge1", "rouge_l", "exact_match", "reward"]
    evaluator = GenerationEvaluator(items, names, subset=None, seed=0, batch_size=8, rank=0, world_size=1)
    stops, decoding = Stops.of(template, tokenizer), Decoding(max_new_tokens=12)
    metrics = evaluator.evaluate(model, tokenizer, stops, decoding, reward)

    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    by_task: dict[str, list[tuple[float, float, float]]] = {}
    for row, item in zip(rows, items, strict=True):
        text = generate_batch(model, [item.prompt_ids], tokenizer, stops, decoding)[0].text
        references = row["references"]
        rouge_l = max(scorer.score(reference, text)["rougeL"].fmeasure for reference in references) * 100
        rouge1 = max(scorer.score(reference, text)["rouge1"].fmeasure for reference in references) * 100
        score = reward.score([row["messages"][0]["content"]], [text])[0]
        by_task.setdefault(row["task"], []).append((rouge1, rouge_l, score))
    for task, values in by_task.items():
        assert metrics[f"test_rouge1/task/{task}"] == pytest.approx(sum(v[0] for v in values) / len(values))
        assert metrics[f"test_rouge_l/task/{task}"] == pytest.approx(sum(v[1] for v in values) / len(values))
        assert metrics[f"test_reward/task/{task}"] == pytest.approx(sum(v[2] for v in values) / len(values), abs=1e-5)
    means = [sum(v[2] for v in values) / len(values) for values in by_task.values()]
    assert metrics["test_reward/macro"] == pytest.approx(sum(means) / len(means), abs=1e-5)
    assert len(by_task) == 11 and 0.0 <= metrics["test_generation/hit_budget_share"] <= 1.0


def test_a_subset_keeps_every_task(setting) -> None:
    tokenizer, _, rows, _ = setting
    items = eval_items(rows, tokenizer, TEMPLATES.get("study_b"), 256, Truncation())
    evaluator = GenerationEvaluator(items, ["rouge_l"], subset=12, seed=0, batch_size=8, rank=0, world_size=1)
    assert len(evaluator.items) == 12 and len(evaluator.tasks) == 11


class FakeLoss:
    def evaluate(self, forward):
        return {"test_loss/macro": 1.0}


def test_the_runner_evaluates_each_group_at_its_cadence_and_at_both_ends() -> None:
    class FakeGroupEvaluator:
        def __init__(self):
            self.calls = 0

        def evaluate(self, *args):
            self.calls += 1
            return {"test_rouge_l/macro": 0.0}

    group = FakeGroupEvaluator()
    runner = InLoopEvaluation(FakeLoss(), 2, [GenerationGroup(5, group)], None, None, Decoding(), None, False)
    due = [step for step in range(13) if runner.due(step, total_steps=12)]
    assert due == [0, 2, 4, 5, 6, 8, 10, 12]
    generation_steps = [step for step in range(13) if "eval_s/generation" in runner.evaluate(step, 12, None, None)]
    assert generation_steps == [0, 5, 10, 12] and group.calls == 4


def test_loss_and_repeated_metrics_are_refused_in_the_evaluate_section() -> None:
    with pytest.raises(ValidationError, match="'loss' runs every train.eval_every"):
        EvaluateConfig(in_loop=[{"metrics": ["loss"], "every": 2}])
    with pytest.raises(ValidationError, match=r"listed more than once: \['rouge_l'\]"):
        EvaluateConfig(in_loop=[{"metrics": ["rouge_l"], "every": 2}, {"metrics": ["rouge_l"], "every": 8}])
    with pytest.raises(ValidationError, match="exactly one of 'builtin' or 'pretrained'"):
        RewardModelConfig(builtin=SIZES, pretrained=str(Path("x")))


def test_two_groups_keep_their_decoding_figures_apart_and_a_named_set_its_prefix(setting) -> None:
    tokenizer, model, rows, _ = setting
    template = TEMPLATES.get("study_b")
    config = EvaluateConfig(
        in_loop=[{"metrics": ["rouge_l"], "every": 1, "subset": 11}, {"metrics": ["exact_match"], "every": 1}],
        max_new_tokens=4,
    )
    common = dict(
        tokenizer=tokenizer,
        template=template,
        max_prompt_tokens=256,
        truncation=Truncation(),
        seed=0,
        rank=0,
        world_size=1,
        loss_batch_size=8,
    )
    runner = InLoopEvaluation.build(None, 1, rows, config, prefix="ood", **common)
    metrics = runner.evaluate(1, 1, None, model)
    assert {key for key in metrics if "_generation/" in key} == {
        f"ood_generation/group{index}/{figure}" for index in (0, 1) for figure in ("hit_budget_share", "reply_tokens")
    }
    assert "ood_rouge_l/macro" in metrics and "ood_exact_match/macro" in metrics
    assert not any(key.startswith("test_") for key in metrics)
    alone = InLoopEvaluation.build(None, 1, rows, config.model_copy(update={"in_loop": config.in_loop[:1]}), **common)
    assert "test_generation/hit_budget_share" in alone.evaluate(1, 1, None, model)  # one group: the plain key
