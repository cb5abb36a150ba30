"""Eval checkpoints written beside the training (`BackgroundWriter`): each one published whole, in order, as a
folder `from_pretrained` loads with the weights of its step; a failed write raised on the training thread with
the root it could not write under. A `FakeEngine` holds a real tiny LLaMA (no DeepSpeed: the ZeRO-3 gathering
runs for real in the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dynamics.config import BuiltinModelConfig, ModelConfig
from dynamics.models import load_model, load_tokenizer, materialise
from dynamics.train.eval_checkpoints import BackgroundWriter

SIZES = BuiltinModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)


class FakeEngine:
    """The parts of a DeepSpeed engine an eval checkpoint reads: the module, the rank, the ZeRO-3 switch."""

    def __init__(self, module: torch.nn.Module, global_rank: int = 0):
        self.module, self.global_rank = module, global_rank

    def zero_optimization_partition_weights(self) -> bool:
        return False


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    source = materialise("writer-test", ModelConfig(builtin=SIZES), tmp_path_factory.mktemp("model"))
    tokenizer = load_tokenizer(source.tokenizer, "study_b")
    return load_model(source.model, tokenizer, torch.float32), tokenizer


def _weights_at(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to(torch.bfloat16).clone() for name, tensor in model.state_dict().items()}


def test_each_checkpoint_is_published_in_order_with_the_weights_of_its_step(model_and_tokenizer, tmp_path: Path):
    model, tokenizer = model_and_tokenizer
    writer = BackgroundWriter(str(tmp_path / "eval"))
    expected = {}
    published = []
    for step in (10, 20, 30):
        with torch.no_grad():  # "training": every weight moves between checkpoints
            for parameter in model.parameters():
                parameter.add_(0.5)
        expected[step] = _weights_at(model)
        writer.save(FakeEngine(model), tokenizer, step)
        published += writer.finished()
    published += writer.close()
    assert [step for step, _ in published] == [10, 20, 30]
    for step, uri in published:
        assert Path(uri) == tmp_path / "eval" / f"step-{step:08d}"
        loaded = load_model(uri, load_tokenizer(uri, "study_b"), torch.bfloat16)
        for name, tensor in loaded.state_dict().items():
            assert torch.equal(tensor, expected[step][name]), (step, name)
    assert writer.close() == []  # nothing handed over twice


def test_other_ranks_write_nothing(model_and_tokenizer, tmp_path: Path):
    model, tokenizer = model_and_tokenizer
    writer = BackgroundWriter(str(tmp_path / "eval"))
    writer.save(FakeEngine(model, global_rank=1), tokenizer, 10)
    assert writer.close() == [] and not (tmp_path / "eval").exists()


def test_a_failed_write_is_raised_on_the_training_thread_with_its_root(model_and_tokenizer, tmp_path: Path):
    model, tokenizer = model_and_tokenizer
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    writer = BackgroundWriter(str(blocked / "eval"))
    writer.save(FakeEngine(model), tokenizer, 10)
    with pytest.raises(RuntimeError, match=f"writing an eval checkpoint under {blocked / 'eval'} failed"):
        writer.close()
