"""Eval checkpoints: the model's weights in bf16 at chosen steps, as a Hugging Face folder, for offline scoring.

Unlike a resume checkpoint (the whole training state, kept by Ray's manager for restarts, 16 bytes a parameter
in fp32 with Adam), an eval checkpoint is what a later `from_pretrained` needs: config, tokenizer and bf16
weights (2 bytes a parameter), written to `<storage_path>/<train run>/eval/step-NNNNNNNN/` outside Ray's
manager, so that evaluation can delete it when done. Rank 0 writes it; under ZeRO-3 every rank takes part in
gathering the partitioned weights, one layer at a time onto rank 0's host memory (DeepSpeed's consolidation),
so no rank ever holds the whole model on its device. In the training loop, `BackgroundWriter` writes it while
training goes on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from dynamics.config import CheckpointConfig
from dynamics.train.checkpoints import folder_name

WEIGHTS_FILE = "model.safetensors"


def is_due(config: CheckpointConfig | None, step: int, total_steps: int) -> bool:
    """Whether step `step` (optimizer steps done) gets an eval checkpoint: every `eval_every` steps and at the
    last one, and at each of `eval_steps`."""
    if config is None or step == 0:
        return False
    every = config.eval_every is not None and (step % config.eval_every == 0 or step == total_steps)
    return every or step in config.eval_steps


def _bf16_state_dict(engine) -> dict[str, torch.Tensor] | None:
    """The full model's weights in bf16 on the host, on rank 0 (None elsewhere); collective under ZeRO-3."""
    if engine.zero_optimization_partition_weights():
        state = engine._zero3_consolidated_16bit_state_dict()  # the public save_16bit_model's own gatherer
    else:
        state = engine.module.state_dict() if engine.global_rank == 0 else None
    if state is None:
        return None
    # Cloned one by one: safetensors refuses tensors that share storage (tied embeddings).
    return {name: tensor.detach().to("cpu", torch.bfloat16).clone().contiguous() for name, tensor in state.items()}


def save(engine, tokenizer, step: int, root: str) -> str | None:
    """Write the eval checkpoint of `step` under `root` (a local path or a pyarrow-readable URI); its URI on
    rank 0, None on the others. Every rank calls it."""
    staged = _stage(engine, tokenizer, step)
    return None if staged is None else _write(staged, root)


@dataclass
class _Staged:
    """An eval checkpoint in host memory: its weights, and its config and tokenizer already in a local folder."""

    step: int
    state: dict[str, torch.Tensor]
    folder: Path


def _stage(engine, tokenizer, step: int) -> _Staged | None:
    """The weights copied to the host (collective under ZeRO-3) and the small files written; rank 0's only."""
    state = _bf16_state_dict(engine)
    if state is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix=f"dynamics-eval-{folder_name(step)}-"))
    engine.module.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return _Staged(step, state, folder)


def _write(staged: _Staged, root: str) -> str:
    from safetensors.torch import save_file

    try:
        metadata = {"format": "pt", "step": str(staged.step)}
        save_file(staged.state, str(staged.folder / WEIGHTS_FILE), metadata=metadata)
        return _publish(staged.folder, f"{root.rstrip('/')}/{folder_name(staged.step)}")
    finally:
        shutil.rmtree(staged.folder, ignore_errors=True)


class BackgroundWriter:
    """Eval checkpoints written beside the training: at its step a checkpoint's weights are copied to host memory
    (every rank takes part under ZeRO-3) and rank 0's thread writes and publishes the folder while the next steps
    train, so the loop pays the copy, not the write (remote storage, a big model: seconds). One write at a time: a
    checkpoint due while the previous one is still being written waits for it, so the host holds at most two
    copies of the weights. `finished()` hands over what is published; `close()` waits for the last one. A failed
    write raises from the next call, on the training thread."""

    def __init__(self, root: str):
        self._root = root
        self._thread: threading.Thread | None = None
        self._published: list[tuple[int, str]] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def save(self, engine, tokenizer, step: int) -> None:
        """Start writing the eval checkpoint of `step`. Every rank calls it."""
        staged = _stage(engine, tokenizer, step)
        if staged is None:
            return
        self._join()
        self._raise_error()
        self._thread = threading.Thread(target=self._run, args=(staged,), name=f"eval-{folder_name(step)}", daemon=True)
        self._thread.start()

    def _run(self, staged: _Staged) -> None:
        try:
            uri = _write(staged, self._root)
        except BaseException as error:  # raised on the training thread by the next call
            self._error = error
            return
        with self._lock:
            self._published.append((staged.step, uri))

    def finished(self) -> list[tuple[int, str]]:
        """(step, URI) of every checkpoint published since the last call."""
        self._raise_error()
        with self._lock:
            published, self._published = self._published, []
        return published

    def close(self) -> list[tuple[int, str]]:
        """Wait for the write in flight; what `finished()` would give then."""
        self._join()
        return self.finished()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"writing an eval checkpoint under {self._root} failed: {error}") from error


def _publish(local: Path, uri: str) -> str:
    """Copy a finished folder to its place (replacing one a previous attempt wrote for the same step)."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        target = Path(uri)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(local, target)
        return os.path.abspath(uri)
    filesystem, path = pafs.FileSystem.from_uri(uri)
    filesystem.create_dir(path, recursive=True)
    pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem)
    return uri
