"""Resume checkpoints: the whole state a restarted worker group needs to continue a trial at the next step.

A checkpoint is one folder `step-00000050/` (`step-00000050.g1/` when saved by the first resumed attempt, so
that a step saved again after a fallback never lands in a folder Ray's manager already tracks), holding what
every rank wrote into its own local folder before Ray uploaded them side by side (their names never collide):

    step-00000050/step-50/…           DeepSpeed `save_checkpoint` (model, ZeRO optimizer partitions, scheduler)
    step-00000050/rank-1.pt           rank 1's torch/CUDA RNG states and its record of what it trained on
    step-00000050/rank-1.json         rank 1's manifest: every file it wrote and its size (written last)
    step-00000050/trial_state.json    rank 0: step, world size, MLflow run id, DeepSpeed tag

A rank's manifest is its last file, so a folder whose manifests are all present and whose files all have their
listed sizes was written whole; anything else (an upload cut short, a deleted or truncated file) is damaged,
and the loader falls back to the previous checkpoint, naming what it skipped and why. The loop draws no numbers
from numpy's or Python's global generators (reshuffles are seeded from the trial seed), so torch's are the
only RNG state there is to keep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

STATE_FILE = "trial_state.json"
_FOLDER = re.compile(r"^step-(\d{8})(?:\.g(\d+))?$")


class CheckpointError(RuntimeError):
    """A resume checkpoint that cannot be used, with the folder named."""

    def __init__(self, folder: str, reason: str):
        super().__init__(f"resume checkpoint {folder}: {reason}")
        self.folder, self.reason = folder, reason

    def __reduce__(self):  # Ray ships errors between processes by pickle
        return type(self), (self.folder, self.reason)


def folder_name(step: int, generation: int = 0) -> str:
    """The checkpoint folder of global step `step` saved by attempt `generation`: sortable, step readable."""
    return f"step-{step:08d}" + (f".g{generation}" if generation else "")


def position_of(name: str) -> tuple[int, int] | None:
    """(step, generation) of a checkpoint folder name; None for any other name."""
    match = _FOLDER.match(name)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def deepspeed_tag(step: int) -> str:
    return f"step-{step}"


@dataclass(frozen=True)
class ResumeState:
    """What one rank restores besides the DeepSpeed engine."""

    step: int  # optimizer steps completed: training continues with step `step` (0-based)
    consumed: list[list[int]]  # this rank's arrangement positions of every completed step
    run_id: str | None  # the MLflow child run the checkpoint belongs to
    folder: str  # where it was loaded from, for messages and tags
    generation: int = 0  # the attempt saving from now on: above every checkpoint folder already in storage


def save(
    engine, folder: Path, step: int, rank: int, world_size: int, consumed: list[list[int]], run_id: str | None
) -> None:
    """Write this rank's share of the checkpoint of `step` into `folder` (collective: every rank calls it)."""
    folder.mkdir(parents=True, exist_ok=True)
    engine.save_checkpoint(str(folder), tag=deepspeed_tag(step), save_latest=False)
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save({"rng": rng, "consumed": consumed, "step": step}, folder / f"rank-{rank}.pt")
    if rank == 0:
        state = {"step": step, "world_size": world_size, "run_id": run_id, "tag": deepspeed_tag(step)}
        (folder / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
    manifest = {
        str(path.relative_to(folder)): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not _is_manifest(path.name)
    }
    (folder / f"rank-{rank}.json").write_text(json.dumps({"step": step, "files": manifest}), encoding="utf-8")


def _is_manifest(name: str) -> bool:
    return re.fullmatch(r"rank-\d+\.json", name) is not None


def check(folder: Path, world_size: int, label: str | None = None) -> dict[str, Any]:
    """The trial state of a checkpoint written whole by `world_size` ranks; CheckpointError naming `label`
    (default: the folder) and what is wrong otherwise."""
    label = label or str(folder)
    if not folder.is_dir():
        raise CheckpointError(label, "the folder does not exist")
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        step, saved_world = int(state["step"]), int(state["world_size"])
    except FileNotFoundError:
        raise CheckpointError(label, f"{STATE_FILE} is missing (rank 0 never finished writing it)") from None
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(label, f"{STATE_FILE} is unreadable ({type(error).__name__}: {error})") from None
    if saved_world != world_size:
        raise CheckpointError(
            label,
            f"saved by {saved_world} ranks, but this trial runs {world_size}: ZeRO partitions cannot be re-split",
        )
    for rank in range(world_size):
        try:
            manifest = json.loads((folder / f"rank-{rank}.json").read_text(encoding="utf-8"))
            files = dict(manifest["files"])
        except FileNotFoundError:
            raise CheckpointError(label, f"rank-{rank}.json is missing (rank {rank} never finished)") from None
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(label, f"rank-{rank}.json is unreadable ({error})") from None
        if int(manifest.get("step", -1)) != step:
            raise CheckpointError(label, f"rank {rank} saved step {manifest.get('step')}, rank 0 step {step}")
        for name, size in files.items():
            path = folder / name
            if not path.is_file():
                raise CheckpointError(label, f"{name} (written by rank {rank}) is missing")
            if path.stat().st_size != size:
                raise CheckpointError(
                    label, f"{name} (written by rank {rank}) has {path.stat().st_size} bytes, {size} were written"
                )
    return state


def load(
    engine,
    folder: Path,
    rank: int,
    world_size: int,
    label: str | None = None,
    generation: int = 1,
    run_id: str | None = None,
) -> ResumeState:
    """Restore the engine, this rank's RNG and its record from a checkpoint folder, once `check` passes it and
    (when both are known) it was saved for MLflow run `run_id`."""
    label = label or str(folder)
    state = check(folder, world_size, label)
    saved_for = state.get("run_id")
    if run_id is not None and saved_for is not None and saved_for != run_id:
        raise CheckpointError(label, f"saved for MLflow run {saved_for}, not this trial's {run_id}")
    try:
        path, _ = engine.load_checkpoint(
            str(folder), tag=state["tag"], load_optimizer_states=True, load_lr_scheduler_states=True
        )
        mine = torch.load(folder / f"rank-{rank}.pt", weights_only=True)
    except Exception as error:
        raise CheckpointError(label, f"loading failed: {type(error).__name__}: {error}") from error
    if path is None:
        raise CheckpointError(label, f"DeepSpeed found no checkpoint under tag {state['tag']!r}")
    torch.set_rng_state(mine["rng"]["torch"])
    if "cuda" in mine["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(mine["rng"]["cuda"])
    consumed = [list(step) for step in mine["consumed"]]
    return ResumeState(int(state["step"]), consumed, state.get("run_id"), label, generation)


class CheckpointStore(Protocol):
    """Where a trial's resume checkpoints go and come back from."""

    def candidates(self) -> list[tuple[str, Any]]:
        """(label, handle) of every checkpoint to try on resume, newest first; the label ends in the folder name."""

    @contextmanager
    def opened(self, handle: Any) -> Iterator[Path]:
        """A local folder holding the checkpoint `handle` for the duration of the block."""

    def publish(self, folder: Path, name: str, metrics: dict[str, float]) -> None:
        """Hand this rank's finished share of a checkpoint over as folder `name` (collective)."""


class FolderStore:
    """Checkpoints as folders under one local root: for a single process without Ray (benchmarks, tests)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def candidates(self) -> list[tuple[str, Any]]:
        found = [path for path in self.root.glob("step-*") if position_of(path.name) is not None]
        return [(str(path), path) for path in sorted(found, key=lambda path: position_of(path.name), reverse=True)]

    @contextmanager
    def opened(self, handle: Path) -> Iterator[Path]:
        yield handle

    def publish(self, folder: Path, name: str, metrics: dict[str, float]) -> None:
        # Ranks of one machine merge their shares into one folder, as Ray's upload does.
        shutil.copytree(folder, self.root / name, dirs_exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


class RayStore:
    """Checkpoints through Ray Train's manager: reported by every rank, kept `num_to_keep`, uploaded to the
    run's storage. On resume the latest registered one comes first, then the older ones beside it in storage."""

    def candidates(self) -> list[tuple[str, Any]]:
        import ray.train

        latest = ray.train.get_checkpoint()
        if latest is None:
            return []
        found = [(latest.path, latest)]
        path = latest.path.rstrip("/")
        newest = position_of(os.path.basename(path))
        # Older folders only: a newer one was never registered (its report did not complete), so never whole.
        older = {
            folder: position
            for folder, position in step_folders(latest.filesystem, os.path.dirname(path)).items()
            if folder.rstrip("/") != path and (newest is None or position < newest)
        }
        for older_path in sorted(older, key=older.get, reverse=True):
            found.append((older_path, ray.train.Checkpoint(older_path, latest.filesystem)))
        return found

    @contextmanager
    def opened(self, handle: Any) -> Iterator[Path]:
        with handle.as_directory() as local:
            yield Path(local)

    def publish(self, folder: Path, name: str, metrics: dict[str, float]) -> None:
        import ray.train

        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(str(folder)),
            checkpoint_dir_name=name,
            delete_local_checkpoint_after_upload=True,
        )
        # The controller takes a report in at its next poll; a worker that died before that would lose it, and
        # the restarted group would fall back to the checkpoint before (or to step 0). Waiting here (at most one
        # poll, RAY_TRAIN_HEALTH_CHECK_INTERVAL_S) means no step past a checkpoint trains before Ray holds it.
        ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)


def step_folders(filesystem, parent: str) -> dict[str, tuple[int, int]]:
    """path → (step, generation) of every checkpoint folder directly under `parent` on a pyarrow filesystem."""
    import pyarrow.fs as pafs

    try:
        infos = filesystem.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
    except OSError:
        return {}
    return {
        info.path: position
        for info in infos
        if info.type == pafs.FileType.Directory and (position := position_of(info.base_name)) is not None
    }


def newest_in_storage(storage_path: str, run_name: str) -> str | None:
    """The newest checkpoint folder a Train run left in its storage (local path or URI), or None."""
    import pyarrow.fs as pafs

    try:
        filesystem, root = pafs.FileSystem.from_uri(storage_path)
    except ValueError:  # a relative local path (pyarrow's ArrowInvalid is a ValueError)
        filesystem, root = pafs.LocalFileSystem(), os.path.abspath(storage_path)
    found = step_folders(filesystem, f"{root.rstrip('/')}/{run_name}")
    if not found:
        return None
    newest = max(found, key=found.get)
    if filesystem.type_name == "local":
        return newest
    return f"{storage_path.rstrip('/')}/{run_name}/{os.path.basename(newest)}"


def local_folder(step: int, rank: int) -> Path:
    """A fresh local folder for this rank's share of a checkpoint before it is published."""
    return Path(tempfile.mkdtemp(prefix=f"dynamics-{folder_name(step)}-rank{rank}-"))


def resume(
    engine, store: CheckpointStore, rank: int, world_size: int, run_id: str | None = None
) -> tuple[ResumeState | None, list[str]]:
    """Load the newest usable checkpoint of `store` (None when there is none); the ones skipped, with why.
    One saved for another MLflow run than `run_id` (when both are known) is not this trial's: skipped.

    Every rank reads the same storage, so every rank skips the same damaged folders and loads the same step;
    a rank that cannot load any of them raises, naming each folder and its fault.
    """
    skipped: list[str] = []
    candidates = store.candidates()
    positions = [position_of(os.path.basename(label.rstrip("/"))) for label, _ in candidates]
    generation = 1 + max((position[1] for position in positions if position is not None), default=0)
    for label, handle in candidates:
        try:
            with store.opened(handle) as folder:
                return load(engine, folder, rank, world_size, label, generation, run_id), skipped
        except CheckpointError as error:
            skipped.append(str(error))
        except OSError as error:  # the folder vanished or could not be downloaded
            skipped.append(str(CheckpointError(label, f"{type(error).__name__}: {error}")))
    if skipped:
        raise CheckpointError("of this trial", "none of its checkpoints can be loaded:\n  " + "\n  ".join(skipped))
    return None, skipped
