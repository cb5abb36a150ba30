"""Eval checkpoints: the model's weights in bf16 at chosen steps, as a Hugging Face folder, for offline scoring.

Unlike a resume checkpoint (the whole training state, kept by Ray's manager for restarts, 16 bytes a parameter
in fp32 with Adam), an eval checkpoint is what a later `from_pretrained` needs: config, tokenizer and bf16
weights (2 bytes a parameter), written to `<storage_path>/<train run>/eval/step-NNNNNNNN/` outside Ray's
manager, so that evaluation can delete it when done. Rank 0 writes it; under ZeRO-3 every rank takes part in
gathering the partitioned weights, one layer at a time onto rank 0's host memory (DeepSpeed's consolidation),
so no rank ever holds the whole model on its device.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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
    from safetensors.torch import save_file

    state = _bf16_state_dict(engine)
    if state is None:
        return None
    local = Path(tempfile.mkdtemp(prefix=f"dynamics-eval-{folder_name(step)}-"))
    try:
        engine.module.config.save_pretrained(local)
        tokenizer.save_pretrained(local)
        save_file(state, str(local / WEIGHTS_FILE), metadata={"format": "pt", "step": str(step)})
        return _publish(local, f"{root.rstrip('/')}/{folder_name(step)}")
    finally:
        shutil.rmtree(local, ignore_errors=True)


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
