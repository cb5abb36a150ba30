"""Reward models: both layouts load and score, batched equals one at a time, long texts keep their response, bad
sources fail by name before training, and the tiny reward model is seeded, saved once and reused.

Run: `python -m pytest -q tests/models/test_reward.py`
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForSequenceClassification

from dynamics import models
from dynamics.config import BuiltinModelConfig, ModelConfig, RewardModelConfig
from dynamics.models import reward
from dynamics.models.reward import (
    RewardModelError,
    RewardScorer,
    check_reward_model_source,
    load_reward_model,
    reward_input,
)

TINY = BuiltinModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
PROMPTS = ["What is 2 + 2?", "Name a colour.", "Write a haiku about rain on a tin roof at night.", "Hi", "Why?"]
RESPONSES = ["4", "Blue, like the sky on a clear day in June.", "Drops on tin drum soft", "Hello there!", "Because."]


@pytest.fixture(scope="module")
def ultrarm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny reward model of UltraRM's layout written by transformers' own `save_pretrained`."""
    folder = tmp_path_factory.mktemp("ultrarm")
    tokenizer = models.builtin_tokenizer()
    reward.build_tiny_reward_model(TINY, vocab_size=len(tokenizer), seed=7).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _classifier_folder(folder: Path, pad_token_id: int | None) -> Path:
    tokenizer = models.builtin_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=1,
        pad_token_id=pad_token_id,
    )
    torch.manual_seed(3)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny one-label sequence classifier, the layout of most published reward models."""
    return _classifier_folder(tmp_path_factory.mktemp("classifier"), pad_token_id=0)


@pytest.fixture(params=["ultrarm", "classifier"])
def either_folder(request: pytest.FixtureRequest, ultrarm_folder: Path, classifier_folder: Path) -> Path:
    return ultrarm_folder if request.param == "ultrarm" else classifier_folder


def test_the_input_is_the_raw_prompt_then_the_response() -> None:
    assert reward_input("Sum 2 and 2.", "4") == "Human: Sum 2 and 2.\n\nAssistant: 4"


def test_ultrarm_scores_are_the_head_on_the_last_non_pad_hidden_state(ultrarm_folder: Path) -> None:
    assert json.loads((ultrarm_folder / "config.json").read_text())["architectures"] == ["LlamaRewardModel"]
    names = set(load_file(str(ultrarm_folder / "model.safetensors")))
    assert "regression_head.weight" in names and all(n.startswith("model.") for n in names - {"regression_head.weight"})
    model, tokenizer = load_reward_model(str(ultrarm_folder))
    scores = RewardScorer(model, tokenizer, batch_size=8).score(PROMPTS, RESPONSES)

    texts = [reward_input(p, r) for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    ids = [tokenizer(text)["input_ids"] for text in texts]
    width = max(map(len, ids))
    padded = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
    with torch.no_grad():
        hidden = model.model(input_ids=padded, attention_mask=mask).last_hidden_state  # (B, T, d)
        expected = [(model.regression_head.weight @ hidden[i, len(row) - 1]).item() for i, row in enumerate(ids)]
    assert scores == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("pad_token_id", [0, None], ids=["config-pad", "no-config-pad"])
def test_a_sequence_classifier_scores_with_its_own_pooling(tmp_path: Path, pad_token_id: int | None) -> None:
    model, tokenizer = load_reward_model(str(_classifier_folder(tmp_path, pad_token_id)))
    assert model.config.pad_token_id == tokenizer.pad_token_id  # set from the tokenizer when the config has none
    scores = RewardScorer(model, tokenizer, batch_size=8).score(PROMPTS, RESPONSES)
    with torch.no_grad():
        alone = [
            model(**tokenizer(reward_input(p, r), return_tensors="pt")).logits[0, 0].item()
            for p, r in zip(PROMPTS, RESPONSES, strict=True)
        ]
    assert scores == pytest.approx(alone, abs=1e-5)


def test_batched_scores_equal_one_at_a_time_in_the_order_given(either_folder: Path) -> None:
    model, tokenizer = load_reward_model(str(either_folder))
    prompts, responses = PROMPTS * 2, RESPONSES[::-1] * 2  # lengths differ within every batch
    batched = RewardScorer(model, tokenizer, batch_size=3).score(prompts, responses)
    one = RewardScorer(model, tokenizer, batch_size=1)
    alone = [one.score([p], [r])[0] for p, r in zip(prompts, responses, strict=True)]
    assert len(batched) == len(prompts) and all(isinstance(value, float) for value in batched)
    assert batched == pytest.approx(alone, abs=1e-5)
    assert RewardScorer(model, tokenizer, batch_size=3).score([], []) == []
    with pytest.raises(ValueError, match="2 prompts and 1 responses"):
        RewardScorer(model, tokenizer, batch_size=3).score(PROMPTS[:2], RESPONSES[:1])


def test_a_long_text_loses_its_start_and_keeps_the_response(either_folder: Path) -> None:
    model, tokenizer = load_reward_model(str(either_folder))
    scorer = RewardScorer(model, tokenizer, batch_size=4, max_length=40)
    response = "The answer is forty-two."
    head_a, head_b = "A" * 200, "B" * 200  # long prompts that differ only where truncation cuts
    score_a, score_b = scorer.score([head_a + " tail", head_b + " tail"], [response, response])
    full = tokenizer(reward_input(head_a + " tail", response))["input_ids"]
    with torch.no_grad():
        kept = torch.tensor([full[-40:]])
        expected = model(input_ids=kept, attention_mask=torch.ones_like(kept)).logits[0, 0].item()
    assert tokenizer.decode(full[-40:]).endswith(response + tokenizer.eos_token)
    assert score_a == pytest.approx(expected, abs=1e-5) and score_a == pytest.approx(score_b, abs=1e-5)
    assert RewardScorer(model, tokenizer, 1, max_length=10**6).max_length == model.config.max_position_embeddings


def test_a_reward_model_loads_whole_inside_a_zero3_worker(ultrarm_folder: Path) -> None:
    from transformers.integrations import HfDeepSpeedConfig, is_deepspeed_zero3_enabled

    zero3 = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})
    assert is_deepspeed_zero3_enabled()
    model, _ = load_reward_model(str(ultrarm_folder))
    assert all(parameter.numel() > 0 for parameter in model.parameters())  # not ZeRO-3 placeholders
    assert is_deepspeed_zero3_enabled()  # the training model's setting is back
    del zero3


# --- bad sources, named before training -------------------------------------------------------------------------


def test_a_missing_path_is_named_with_its_config_key(tmp_path: Path) -> None:
    for source in [str(tmp_path / "no-such-rm"), "./no-such-rm", "~/no-such-rm-dynamics"]:
        with pytest.raises(RewardModelError, match="evaluate.reward_model") as caught:
            check_reward_model_source(source)
        assert source in str(caught.value) and "no such folder" in str(caught.value)


def test_a_folder_without_config_or_weights_is_named(tmp_path: Path, classifier_folder: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RewardModelError, match="without config.json") as caught:
        check_reward_model_source(str(empty))
    assert str(empty) in str(caught.value)
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    shutil.copy(classifier_folder / "config.json", weightless)
    with pytest.raises(RewardModelError, match="no weights") as caught:
        check_reward_model_source(str(weightless))
    assert str(weightless) in str(caught.value)
    with pytest.raises(RewardModelError, match="cannot read its config") as caught:
        load_reward_model(str(empty))
    assert str(empty) in str(caught.value)


def test_an_unsupported_architecture_is_named_with_the_supported_layouts(tmp_path: Path) -> None:
    causal = models.materialise("lm", ModelConfig(builtin=TINY), tmp_path).model  # a language model
    for check in (check_reward_model_source, load_reward_model):
        with pytest.raises(RewardModelError, match="LlamaForCausalLM") as caught:
            check(causal)
        message = str(caught.value)
        assert causal in message and "ForSequenceClassification" in message and "LlamaRewardModel" in message


def test_a_classifier_with_two_labels_is_not_a_reward_model(tmp_path: Path, classifier_folder: Path) -> None:
    two = tmp_path / "two-labels"
    shutil.copytree(classifier_folder, two)
    config = json.loads((two / "config.json").read_text())
    (two / "config.json").write_text(json.dumps({**config, "id2label": {"0": "bad", "1": "good"}}))
    with pytest.raises(RewardModelError, match="2 labels") as caught:
        check_reward_model_source(str(two))
    assert str(two) in str(caught.value)


def test_a_hub_name_offline_must_be_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ultrarm_folder: Path
) -> None:
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # conftest: tests never reach the hub
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(RewardModelError, match="not available offline") as caught:
        check_reward_model_source("openbmb/UltraRM-13b")
    assert "openbmb/UltraRM-13b" in str(caught.value)
    # The layout the hub cache keeps a downloaded repository in: a ref naming a snapshot folder of its files.
    repo = tmp_path / "hub" / "models--openbmb--UltraRM-13b"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copytree(ultrarm_folder, repo / "snapshots" / ("0" * 40))
    check_reward_model_source("openbmb/UltraRM-13b")


def test_existing_folders_of_both_layouts_pass_the_check(ultrarm_folder: Path, classifier_folder: Path) -> None:
    check_reward_model_source(str(ultrarm_folder))
    check_reward_model_source(str(classifier_folder))


# --- the tiny reward model ----------------------------------------------------------------------------------------


def test_the_tiny_reward_model_is_seeded() -> None:
    first, second = (reward.build_tiny_reward_model(TINY, vocab_size=300).state_dict() for _ in range(2))
    assert first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)
    other = reward.build_tiny_reward_model(TINY, vocab_size=300, seed=reward.REWARD_SEED + 1).state_dict()
    assert not torch.equal(first["regression_head.weight"], other["regression_head.weight"])


def test_the_tiny_reward_model_is_saved_once_and_its_scores_differ(tmp_path: Path) -> None:
    source = reward.materialise_reward_model(RewardModelConfig(builtin=TINY), tmp_path)
    assert Path(source).parent == tmp_path / "models" and Path(source).name.startswith("reward-")
    files = {path.name: path.stat().st_mtime_ns for path in Path(source).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "manifest.sha256.json"} <= files.keys()
    assert reward.materialise_reward_model(RewardModelConfig(builtin=TINY), tmp_path) == source
    assert {path.name: path.stat().st_mtime_ns for path in Path(source).iterdir()} == files  # reused, not rewritten
    assert not list((tmp_path / "models").glob("*.partial-*"))
    check_reward_model_source(source)
    scores = RewardScorer(*load_reward_model(source), batch_size=4).score(PROMPTS, RESPONSES)
    assert max(scores) - min(scores) > 1e-4 and len({round(value, 6) for value in scores}) == len(scores)


def test_a_pretrained_reward_model_passes_through() -> None:
    assert reward.materialise_reward_model(RewardModelConfig(pretrained="openbmb/UltraRM-13b"), Path("x")) == (
        "openbmb/UltraRM-13b"
    )


def test_a_damaged_tiny_reward_model_is_moved_aside_and_rebuilt_identically(tmp_path: Path) -> None:
    folder = Path(reward.save_tiny_reward_model(TINY, tmp_path / "rm"))
    original = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(original[: len(original) // 2])
    assert reward.save_tiny_reward_model(TINY, folder) == str(folder)
    assert (folder / "model.safetensors").read_bytes() == original
    (moved,) = (tmp_path / "damaged").iterdir()
    assert moved.name.startswith("rm.")


def test_a_node_without_the_driver_folder_rebuilds_the_same_reward_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = RewardModelConfig(builtin=TINY)
    source = reward.materialise_reward_model(config, tmp_path / "driver")
    assert reward.reward_model_on_this_node(source, config) == source
    original = (Path(source) / "model.safetensors").read_bytes()
    shutil.rmtree(source)  # what another node of the cluster sees
    monkeypatch.setattr(reward.tempfile, "gettempdir", lambda: str(tmp_path / "node"))
    rebuilt = reward.reward_model_on_this_node(source, config)
    assert Path(rebuilt) == tmp_path / "node" / "dynamics-models" / Path(source).name
    assert (Path(rebuilt) / "model.safetensors").read_bytes() == original


def test_a_worker_of_any_rank_saves_a_whole_tiny_reward_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Inside Ray Train, torch.distributed is initialised; transformers' own save writes weights only on rank 0.
    import transformers.distributed.mixin as distributed

    monkeypatch.setattr(distributed, "_is_torch_distributed_initialized", lambda: True)
    monkeypatch.setattr(distributed, "_get_torch_distributed_rank", lambda: 1)
    folder = Path(reward.save_tiny_reward_model(TINY, tmp_path / "rank1"))
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {path.name for path in folder.iterdir()}
    monkeypatch.undo()
    expected = reward.build_tiny_reward_model(TINY, vocab_size=len(models.builtin_tokenizer())).state_dict()
    loaded = load_reward_model(str(folder)).model.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in expected.items())
