"""Resume checkpoints on disk: what makes a folder usable, how a damaged one is named and skipped, and where a
failed trial's run says it got to. DeepSpeed's own save and load run for real in the integration tests; here a
`FakeEngine` writes and reads one file, so each damage can be made precisely."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dynamics.tracking import ends_on_error, start_sweep_run
from dynamics.train import checkpoints
from dynamics.train.trial import tag_where_it_stopped


class FakeEngine:
    """Saves and loads a tensor under the tag's folder, as DeepSpeed's engine does with its state."""

    def __init__(self, value: float = 0.0):
        self.value = torch.tensor([value])
        self.loaded_from: list[str] = []

    def save_checkpoint(self, folder: str, tag: str, save_latest: bool = True) -> None:
        Path(folder, tag).mkdir(parents=True, exist_ok=True)
        torch.save(self.value, Path(folder, tag, "state.pt"))

    def load_checkpoint(self, folder: str, tag: str, **_: object) -> tuple[str | None, dict]:
        path = Path(folder, tag, "state.pt")
        self.value = torch.load(path, weights_only=True)
        self.loaded_from.append(folder)
        return str(path), {}


def _save_step(root: Path, step: int, world_size: int = 2, generation: int = 0) -> Path:
    store = checkpoints.FolderStore(root)
    name = checkpoints.folder_name(step, generation)
    for rank in range(world_size):
        folder = checkpoints.local_folder(step, rank)
        checkpoints.save(FakeEngine(float(step)), folder, step, rank, world_size, [[step, rank]], "run-1")
        store.publish(folder, name, {})
    return root / name


def test_a_whole_checkpoint_loads_its_step_record_and_rng(tmp_path):
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    folder = _save_step(tmp_path, 4)
    torch.rand(1)  # moves the generator on; the load must put it back
    engine = FakeEngine()
    state = checkpoints.load(engine, folder, rank=1, world_size=2)
    assert (state.step, state.consumed, state.run_id) == (4, [[4, 1]], "run-1")
    assert engine.value.item() == 4.0
    assert torch.equal(torch.rand(1), expected)


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda f: (f / "step-4" / "state.pt").write_bytes(b"x"), "has 1 bytes"),
        (lambda f: (f / "step-4" / "state.pt").unlink(), "step-4/state.pt (written by rank"),
        (lambda f: (f / "rank-1.json").unlink(), "rank-1.json is missing"),
        (lambda f: (f / "rank-0.json").write_text("{"), "rank-0.json is unreadable"),
        (lambda f: (f / checkpoints.STATE_FILE).unlink(), "trial_state.json is missing"),
        (lambda f: (f / checkpoints.STATE_FILE).write_text("[]"), "trial_state.json is unreadable"),
        (shutil.rmtree, "does not exist"),
    ],
    ids=["truncated", "file missing", "manifest missing", "manifest unreadable", "state missing", "state bad", "gone"],
)
def test_a_damaged_checkpoint_is_refused_naming_the_folder_and_the_fault(tmp_path, damage, named):
    folder = _save_step(tmp_path, 4)
    damage(folder)
    with pytest.raises(checkpoints.CheckpointError) as caught:
        checkpoints.check(folder, world_size=2)
    assert str(folder) in str(caught.value) and named in str(caught.value)


def test_a_checkpoint_of_another_world_size_is_refused(tmp_path):
    folder = _save_step(tmp_path, 4, world_size=2)
    with pytest.raises(checkpoints.CheckpointError, match="saved by 2 ranks, but this trial runs 4"):
        checkpoints.check(folder, world_size=4)


def test_resume_falls_back_past_damaged_checkpoints_and_says_which(tmp_path):
    _save_step(tmp_path, 4)
    newest = _save_step(tmp_path, 8)
    (newest / "step-8" / "state.pt").write_bytes(b"")
    engine = FakeEngine()
    state, skipped = checkpoints.resume(engine, checkpoints.FolderStore(tmp_path), rank=0, world_size=2)
    assert state is not None and state.step == 4 and engine.value.item() == 4.0
    assert len(skipped) == 1 and "step-00000008" in skipped[0] and "0 bytes" in skipped[0]
    assert state.generation == 1  # what it saves from now on goes to folders of its own


def test_resume_with_nothing_saved_starts_from_the_beginning(tmp_path):
    state, skipped = checkpoints.resume(FakeEngine(), checkpoints.FolderStore(tmp_path), rank=0, world_size=1)
    assert state is None and skipped == []


def test_resume_fails_cleanly_when_no_checkpoint_is_usable(tmp_path):
    for step in (4, 8):
        (_save_step(tmp_path, step) / "rank-0.json").unlink()
    with pytest.raises(checkpoints.CheckpointError) as caught:
        checkpoints.resume(FakeEngine(), checkpoints.FolderStore(tmp_path), rank=0, world_size=2)
    message = str(caught.value)
    assert "none of its checkpoints can be loaded" in message
    assert "step-00000008" in message and "step-00000004" in message


def test_folders_sort_by_step_then_generation():
    names = [checkpoints.folder_name(8), checkpoints.folder_name(4, 2), checkpoints.folder_name(8, 1)]
    assert sorted(names, key=checkpoints.position_of) == ["step-00000004.g2", "step-00000008", "step-00000008.g1"]
    assert checkpoints.position_of("checkpoint_2026-12-03") is None


def test_a_failed_trial_run_says_where_it_got_to(tmp_path):
    run = start_sweep_run(f"sqlite:///{tmp_path / 'mlflow.db'}", "failures", "trial", {})
    buffer = run.metric_buffer()
    for step in (1, 2, 3):
        buffer.add({"train_loss": 1.0 / step}, step)
    buffer.flush()
    storage = tmp_path / "storage"
    _save_step(storage / "the-run", 2)
    _save_step(storage / "the-run", 2, generation=1)
    with pytest.raises(RuntimeError), ends_on_error(run):
        tag_where_it_stopped(run, str(storage), "the-run")  # as run_trial does before the error leaves it
        raise RuntimeError("worker died three times")
    record = run.get()
    assert record.info.status == "FAILED"
    assert record.data.tags["failed_after_step"] == "3"
    assert record.data.tags["last_checkpoint"] == str(storage / "the-run" / "step-00000002.g1")
    assert "worker died three times" in record.data.tags["error"]


def test_a_resumed_buffer_writes_each_step_once(tmp_path):
    run = start_sweep_run(f"sqlite:///{tmp_path / 'mlflow.db'}", "once", "trial", {})
    first = run.metric_buffer()
    for step in (1, 2, 3):
        first.add({"train_loss": float(step)}, step)
    first.flush()
    again = run.metric_buffer(skip=run.logged_steps())
    for step in (2, 3, 4):
        again.add({"train_loss": 10.0 * step, "lr": 0.1}, step)
    again.flush()
    history = run.client.get_metric_history(run.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
    assert json.dumps(sorted(m.step for m in run.client.get_metric_history(run.run_id, "lr"))) == "[2, 3, 4]"


def test_a_checkpoint_of_another_run_is_not_resumed_from(tmp_path):
    _save_step(tmp_path, 4)  # saved for "run-1"
    with pytest.raises(checkpoints.CheckpointError, match="saved for MLflow run run-1, not this trial's run-2"):
        checkpoints.resume(FakeEngine(), checkpoints.FolderStore(tmp_path), rank=0, world_size=2, run_id="run-2")
