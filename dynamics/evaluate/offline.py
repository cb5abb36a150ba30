"""Scoring saved eval checkpoints (`dynamics evaluate`): any metric, on any trial, after training.

A trial's eval checkpoints (bf16 Hugging Face folders, `checkpoints.eval_every`) are named by its run's tags
`eval_checkpoint/step-N`. Each is scored in its own Ray task, so a run's checkpoints fan out over the cluster's
workers; a task loads the folder with `from_pretrained` and runs the same evaluators as the training loop (test
loss, the generation groups, the ability scorer) on one process. The driver logs every metric to the trial's run
at its checkpoint's step, skipping the (metric, step) points the run already holds: metrics logged in the loop
stay as they were, and scoring a run twice adds nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from dynamics.config import EvaluateConfig, InLoopMetrics, TrainConfig
from dynamics.evaluate.loss import TestLossEvaluator, test_items
from dynamics.evaluate.metrics import METRICS
from dynamics.evaluate.runner import InLoopEvaluation
from dynamics.models import ModelSource
from dynamics.text.census import encode_split
from dynamics.text.encoding import Truncation
from dynamics.text.templates import TEMPLATES
from dynamics.tracking import TrackedRun

CHECKPOINT_TAG = "eval_checkpoint/"


@dataclass(frozen=True)
class OfflineEvaluation:
    """What scoring a checkpoint needs besides the checkpoint: the settings of the trial and the test rows."""

    train: TrainConfig  # template, max_length, truncation, eval batch size, precision
    evaluate: EvaluateConfig  # decoding and the reward model's settings
    metrics: tuple[str, ...]  # registered names; "loss" included or not
    subset: int | None  # test items the generation metrics score (seeded, stratified by task); None = all
    test_rows: tuple[dict, ...]  # canonical test rows (id, task, category, messages, references, ability, …)
    reward_model: str | None = None  # a folder or hub name, when a metric needs one
    seed: int = 0
    prefix: str = "test"  # the metric prefix: 'test', or the evaluate.sets name the rows come from

    def __post_init__(self) -> None:
        for name in self.metrics:
            METRICS.get(name)  # UnknownName with "did you mean", before any work
        if not self.test_rows:
            raise ValueError("the test set is empty: nothing to score the checkpoints on")


def checkpoints_of(run: TrackedRun) -> dict[int, str]:
    """step → eval checkpoint folder or URI, from the run's tags, by step."""
    tags = run.get().data.tags
    found = {int(key.rsplit("-", 1)[1]): value for key, value in tags.items() if key.startswith(CHECKPOINT_TAG)}
    return dict(sorted(found.items()))


def _local_copy(uri: str) -> tuple[Path, bool]:
    """A local folder holding the checkpoint at `uri`, and whether it is a temporary copy to delete."""
    if "://" not in uri:
        return Path(uri), False
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    local = Path(tempfile.mkdtemp(prefix="dynamics-eval-checkpoint-"))
    pafs.copy_files(path, str(local), source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
    return local, True


def score_checkpoint(uri: str | ModelSource, request: OfflineEvaluation) -> dict[str, float]:
    """Every requested metric of the checkpoint at `uri` (one process, its best device); a ModelSource is a
    base model, rebuilt here if it is a built-in one this node cannot see."""
    from dynamics.models import load_model, load_tokenizer, on_this_node
    from dynamics.models.reward import reward_scorer

    if isinstance(uri, ModelSource):
        uri = on_this_node(uri).model
    config = request.train
    folder, temporary = _local_copy(uri)
    try:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
        template = TEMPLATES.get(config.template)
        tokenizer = load_tokenizer(str(folder), config.template)
        model = load_model(str(folder), tokenizer, dtype).to(device).eval()
        test = pa.Table.from_pylist(list(request.test_rows))
        loss = None
        if "loss" in request.metrics:
            split = encode_split(test, tokenizer, template, config)
            loss = TestLossEvaluator(
                test_items(test, split), config.eval_batch_size, 0, 1, tokenizer.pad_token_id, prefix=request.prefix
            )
        generated = [name for name in request.metrics if name != "loss"]
        groups = [InLoopMetrics(metrics=generated, every=1, subset=request.subset)] if generated else []
        runner = InLoopEvaluation.build(
            loss,
            1,
            request.test_rows,
            request.evaluate.model_copy(update={"in_loop": groups}),
            tokenizer,
            template,
            config.max_length,
            Truncation.of(config),
            request.seed,
            0,
            1,
            config.eval_batch_size,
            reward_scorer(request.reward_model, request.evaluate.reward_model, dtype, device),
            prefix=request.prefix,
        )

        def forward(batch: dict[str, torch.Tensor], columns: torch.Tensor) -> torch.Tensor:
            return model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                logits_to_keep=columns.to(device),
                use_cache=False,
            ).logits

        with torch.inference_mode():
            metrics = runner.evaluate(0, 0, forward, model)
        # Its cost is not the loop's: eval_s/… stays the share of training time spent evaluating.
        return {key.replace("eval_s/", "scoring_s/", 1): value for key, value in metrics.items()}
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def score_checkpoints(
    checkpoints: dict[int, str | ModelSource], request: OfflineEvaluation, resources: dict[str, Any] | None = None
) -> dict[int, dict[str, float]]:
    """step → metrics of each checkpoint, one Ray task per checkpoint (`resources`: what each task reserves)."""
    import ray

    # DEFAULT: outside the caller's placement group (a Tune trial's holds only a sliver of CPU for its driver).
    task = ray.remote(score_checkpoint).options(scheduling_strategy="DEFAULT", **(resources or {"num_cpus": 1}))
    request_ref = ray.put(request)
    futures = {step: task.remote(uri, request_ref) for step, uri in checkpoints.items()}
    return {step: ray.get(future) for step, future in futures.items()}


def log_scores(run: TrackedRun, scores: dict[int, dict[str, float]]) -> dict[str, Sequence[int]]:
    """Log each checkpoint's metrics to `run` at its step, once per (metric, step); metric → steps written."""
    held = run.logged_steps()
    buffer = run.metric_buffer(skip=held)
    written: dict[str, list[int]] = {}
    for step, metrics in sorted(scores.items()):
        buffer.add(metrics, step)
        for key in metrics:
            if step not in held.get(key, set()):
                written.setdefault(key, []).append(step)
    buffer.flush()
    return written
