"""Built-in models: saved once on the driver, rebuilt bit-identically on a node that cannot see that folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from dynamics import models
from dynamics.config import BuiltinModelConfig, ModelConfig

TINY = ModelConfig(
    builtin=BuiltinModelConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
)


def _weights(folder: str) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_a_node_without_the_driver_folder_rebuilds_the_same_weights(tmp_path: Path, monkeypatch) -> None:
    source = models.materialise("tiny", TINY, tmp_path / "driver")
    assert models.on_this_node(source) == source  # the folder is here: used as is
    expected = _weights(source.model)
    shutil.rmtree(source.model)  # what another node of the cluster sees: no such folder
    monkeypatch.setattr(models.tempfile, "gettempdir", lambda: str(tmp_path / "node"))
    rebuilt = models.on_this_node(source)
    assert Path(rebuilt.model).parent == tmp_path / "node" / "dynamics-models"
    assert rebuilt.num_parameters == source.num_parameters and rebuilt.builtin == source.builtin
    weights = _weights(rebuilt.model)
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[name], expected[name]) for name in expected)
    assert models.on_this_node(source) == rebuilt  # the second worker on the node reuses it
    assert not list((tmp_path / "node" / "dynamics-models").glob("*.partial-*"))


def test_pretrained_sources_pass_through_untouched(tmp_path: Path) -> None:
    source = models.materialise("hub", ModelConfig(pretrained="org/some-model"), tmp_path)
    assert source.builtin is None and models.on_this_node(source) is source


def test_a_lost_race_to_save_keeps_the_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    winner = models.materialise("tiny", TINY, tmp_path / "winner")
    real_rename = Path.rename

    def rename_after_winner(self: Path, target: Path) -> Path:
        shutil.copytree(winner.model, target)  # another worker on the node finished first
        return real_rename(self, target)  # so this rename fails: the folder is there and not empty

    monkeypatch.setattr(Path, "rename", rename_after_winner)
    loser = models.materialise("tiny", TINY, tmp_path / "loser")
    assert Path(loser.model).name == Path(winner.model).name and loser.num_parameters == winner.num_parameters
    assert not list((tmp_path / "loser" / "models").glob("*.partial-*"))


def test_a_worker_of_any_rank_saves_a_whole_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Inside Ray Train, torch.distributed is initialised; transformers' own save writes weights only on rank 0.
    import transformers.distributed.mixin as distributed

    monkeypatch.setattr(distributed, "_is_torch_distributed_initialized", lambda: True)
    monkeypatch.setattr(distributed, "_get_torch_distributed_rank", lambda: 1)
    source = models.materialise("tiny", TINY, tmp_path / "rank1")
    written = {path.name for path in Path(source.model).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= written
    monkeypatch.undo()
    reference = models.build_builtin_model(TINY.builtin, vocab_size=len(models.builtin_tokenizer()))
    weights = _weights(source.model)
    assert all(torch.equal(weights[name], tensor) for name, tensor in reference.state_dict().items())


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "no-manifest"])
def test_a_damaged_saved_model_is_named_moved_aside_and_rebuilt_identically(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    source = models.materialise("tiny", TINY, tmp_path)
    weights = Path(source.model) / "model.safetensors"
    original = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(original[: len(original) // 2])
    elif damage == "flip":
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    elif damage == "delete":
        weights.unlink()
    else:
        (Path(source.model) / "manifest.sha256.json").unlink()
    with caplog.at_level("WARNING"):
        again = models.materialise("tiny", TINY, tmp_path)
    assert again == source and weights.read_bytes() == original
    (warning,) = [r.getMessage() for r in caplog.records if "damaged cache entry" in r.getMessage()]
    assert source.model in warning and ("model.safetensors" in warning or "manifest" in warning)
    (moved,) = (tmp_path / "models" / "damaged").iterdir()
    assert moved.name.startswith(Path(source.model).name)


def test_an_intact_saved_model_is_reused_without_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = models.materialise("tiny", TINY, tmp_path)
    stamp = (Path(source.model) / "model.safetensors").stat().st_mtime_ns
    with caplog.at_level("WARNING"):
        models.materialise("tiny", TINY, tmp_path)
    assert (Path(source.model) / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [r for r in caplog.records if "damaged" in r.getMessage()]
