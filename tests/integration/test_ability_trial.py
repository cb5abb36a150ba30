"""A DoIT-format study with every question type runs through a real trial (Ray Tune → Ray Train, 2 DeepSpeed
workers) and its run holds per-ability scores, chance scores and the overall mean at every evaluated step; its
valid split and an out-of-distribution pool are evaluated under their own prefixes, and the step with the best
valid score is selected, its test scores reported as the trial's result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dynamics.config import SweepConfig
from dynamics.sweep.driver import run_sweep
from dynamics.tracking import TrackedRun, child_runs

OPTIONS4 = "\nA. one\nB. two\nC. three\nD. four"
OPTIONS3 = "\nA. red\nB. green\nC. blue"


def _chat(*turns: str) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(turns)]


def _write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _doit_tree(root: Path) -> None:
    full = root / "curated" / "full"
    for ability in ("code", "creative_writing"):
        _write(
            full / f"{ability}_full.json", [{"messages": _chat(f"{ability} task {k}", f"reply {k}")} for k in range(8)]
        )
    test = root / "curated" / "test"
    _write(
        test / "biology_test.json",
        [{"messages": _chat("Which?" + OPTIONS4, "B"), "question_format": 0, "type": "biology"}],
    )
    _write(
        test / "understanding_test.json",
        [
            {
                "messages": _chat("Read.", "Ok.", "Which colour?" + OPTIONS3, "C"),
                "question_format": 0,
                "type": "understanding",
            }
        ],
    )
    _write(
        test / "history_test.json",
        [{"messages": _chat("真假：长城很长。", "正确"), "question_format": 0, "type": "history"}],
    )
    _write(
        test / "chinese_test.json",
        [{"messages": _chat("填空：__天来了。", "春"), "question_format": 0, "type": "chinese"}],
    )
    _write(
        test / "ethics_test.json",
        [{"messages": _chat("Which are fair?" + OPTIONS4, "AC"), "question_format": 0, "type": "ethics"}],
    )
    _write(
        test / "math_test.json",
        [
            {
                "messages": _chat("Half of 1?", "It is \\boxed{\\frac12}."),
                "answer": "\\frac{1}{2}",
                "question_format": 0,
                "type": "math",
            }
        ],
    )
    valid = root / "curated" / "valid"
    _write(
        valid / "biology_valid.json",
        [{"messages": _chat("Which one?" + OPTIONS4, "C"), "question_format": 0, "type": "biology"}],
    )
    _write(
        valid / "math_valid.json",
        [{"messages": _chat("Twice 2?", "\\boxed{4}"), "answer": "4", "question_format": 0, "type": "math"}],
    )
    # An out-of-distribution pool of the user's own (C-Eval-style), fed to the test split of its own source.
    _write(
        root / "ood" / "ceval" / "history_ceval.json",
        [{"messages": _chat("真假：黄河很长。", "正确"), "question_format": 0, "type": "history"}],
    )
    # Three identical choices: every model ties them, so the item scores exactly 1/3 whatever was learnt.
    _write(
        test / "role_play_test.json",
        [
            {
                "messages": _chat("Greet me as a pirate."),
                "choices": ["Ahoy!"] * 3,
                "question_format": 1,
                "type": "role_play",
            }
        ],
    )


@pytest.mark.usefixtures("ray_cluster")
def test_a_doit_trial_logs_per_ability_scores_chances_and_the_overall_mean(tmp_path: Path) -> None:
    _doit_tree(tmp_path / "doit")
    config = SweepConfig.model_validate(
        {
            "name": "doit-abilities",
            "workdir": str(tmp_path / "work"),
            "data": {
                "source": "doit",
                "path": str(tmp_path / "doit"),
                "options": {"pools": ["curated/full", "curated/valid", "curated/test"]},
            },
            "models": {
                "tiny": {
                    "builtin": {
                        "hidden_size": 64,
                        "intermediate_size": 172,
                        "num_hidden_layers": 2,
                        "num_attention_heads": 4,
                    }
                }
            },
            "train": {
                "template": "study_a",
                "global_batch_size": 8,
                "micro_batch_size": 4,
                "eval_every": 1,
                "max_length": 128,
            },
            "evaluate": {
                "in_loop": [{"metrics": ["ability"], "every": 1}],
                "max_new_tokens": 12,
                "sets": [
                    {"name": "valid", "split": "valid", "metrics": ["loss", "ability"]},
                    {
                        "name": "ceval",
                        "source": {
                            "source": "doit",
                            "path": str(tmp_path / "doit"),
                            "options": {"pools": ["ood/ceval"], "split_of_pool": {"ood/ceval": "test"}},
                        },
                        "metrics": ["loss", "ability"],
                    },
                ],
                "select": {"set": "valid", "metric": "ability"},
            },
            "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
            "checkpoints": {"resume_every": None},
            "tracking": {"experiment": "doit-abilities"},
            "grid": {"volume": [16], "model": ["tiny"], "permutation": ["rt"], "seed": [0]},
        }
    )
    result = run_sweep(config)
    assert result.num_trials == 1 and result.failed_trials == 0
    client = MlflowClient(result.tracking_uri)
    (child,) = child_runs(TrackedRun(result.tracking_uri, result.parent_run_id))
    metrics = child.data.metrics
    chance = {  # by hand: options offered, 1/C(4, 2) for two letters of four, no chance to guess free text
        "biology": 25.0,
        "understanding": 100 / 3,
        "history": 50.0,
        "chinese": 0.0,
        "ethics": 100 / 6,
        "math": 0.0,
        "role_play": 100 / 3,
    }
    for ability, expected in chance.items():
        assert metrics[f"test_ability_chance/{ability}"] == pytest.approx(expected)
        assert 0.0 <= metrics[f"test_ability/{ability}"] <= 100.0
    assert metrics["test_ability_chance/overall"] == pytest.approx(sum(chance.values()) / len(chance))
    assert metrics["test_ability/role_play"] == pytest.approx(100 / 3)  # a three-way tie of identical choices
    for key in ("test_ability/overall", "test_ability/biology", "test_ability_chance/overall"):
        steps = sorted(point.step for point in client.get_metric_history(child.info.run_id, key))
        assert steps == [0, 1, 2], key  # 16 items / global batch 8: step 0 and both steps
    overall = {
        point.step: point.value for point in client.get_metric_history(child.info.run_id, "test_ability/overall")
    }
    for step, value in overall.items():
        per_ability = [
            next(p.value for p in client.get_metric_history(child.info.run_id, f"test_ability/{a}") if p.step == step)
            for a in chance
        ]
        assert value == pytest.approx(sum(per_ability) / len(per_ability))

    # The named sets, each under its own prefix, with loss per ability beside the scores.
    assert set(metrics).issuperset(
        {
            "valid_ability/overall",
            "valid_ability/biology",
            "valid_loss/macro",
            "valid_loss/ability/math",
            "ceval_ability/history",
            "ceval_loss/macro",
            "test_loss/ability/biology",
        }
    )
    assert not any(key.startswith("test_") and "ceval" in key for key in metrics)  # no set leaks into test_
    # Selection, recomputed from the run's own histories: the best valid overall (earliest on ties), and the
    # trial's selected test scores equal to those logged at that step.
    def history(key: str) -> dict[int, float]:
        return {point.step: point.value for point in client.get_metric_history(child.info.run_id, key)}

    valid_overall = history("valid_ability/overall")
    best = max(valid_overall.values())
    expected_step = min(step for step, value in valid_overall.items() if value == best)
    assert metrics["selected/step"] == expected_step
    for key in ("test_ability/overall", "test_loss/macro", "test_ability/math"):
        assert metrics[f"selected/{key}"] == pytest.approx(history(key)[expected_step]), key
    assert sorted(valid_overall) == sorted(history("test_ability/overall"))  # both evaluated at every step
