"""The per-worker training loop: DeepSpeed on a Ray Train worker, ordered batches, in-loop test loss.

Runs inside `TorchTrainer` (Ray Train V2). Ray has already created the process group (gloo on CPU, NCCL on
GPU); DeepSpeed reuses it. Rank 0 writes every step's metrics to the trial's MLflow run; every rank calls
`ray.train.report` at every resume checkpoint (`dynamics.train.checkpoints`) and once at the end, with the
final metrics. A restarted worker group loads the newest usable checkpoint, continues the same global order at
the next step and logs to the same MLflow run, skipping the (metric, step) points that run already holds.
`train_worker` is the whole loop without Ray, so a benchmark or a single-process check runs exactly what a
trial runs.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import torch
import torch.distributed as dist

from dynamics.evaluate.selection import selected_scores
from dynamics.text.census import EncodedSplit, encode_split
from dynamics.text.templates import TEMPLATES
from dynamics.train import checkpoints, eval_checkpoints
from dynamics.train.deepspeed_setup import deepspeed_config
from dynamics.train.inputs import WorkerInputs
from dynamics.train.optimizer import build_optimizer, build_scheduler
from dynamics.train.sharding import StepPlan
from dynamics.train.steps import on_device, train_step
from dynamics.train.throughput import ThroughputMeter, peak_flops_per_device
from dynamics.train.trial_evaluation import build_trial_evaluation
from dynamics.train.worker_model import load_for_training, model_hidden_size, seed_torch

log = logging.getLogger(__name__)


PROGRESS_STEP_METRIC = "progress/step"  # optimizer steps done: what the sweep's progress view shows


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Entry point given to `TorchTrainer`; `loop_config["inputs"]` is a WorkerInputs."""
    entered = time.time()  # the worker group is up and this module imported: what Ray's start-up cost
    import ray.train

    context = ray.train.get_context()
    if torch.cuda.is_available():
        _use_ray_device()
    store = checkpoints.RayStore()
    inputs = loop_config["inputs"]
    final = train_worker(inputs, context.get_world_rank(), context.get_world_size(), store, entered_at=entered)
    # Reports only at checkpoints and at the end: a report blocks until Ray Train's controller polls
    # (~0.5-2 s), so per-step curves go straight to MLflow from rank 0 instead.
    ray.train.report(final)


def _use_ray_device() -> None:
    """Make this worker's GPU (Ray's choice) the current device, for NCCL and for DeepSpeed.

    DeepSpeed picks `cuda:$LOCAL_RANK`; Ray gives a worker with several GPUs the lowest of its own, which is not
    its local rank, so LOCAL_RANK is pointed at it (a rank computes on one device; more reserve headroom).
    """
    import ray.train.torch

    device = ray.train.torch.get_device()
    torch.cuda.set_device(device)
    os.environ["LOCAL_RANK"] = str(device.index)


@dataclass
class PreparedWorker:
    """One rank ready for step 0: its encoded splits, step plan and DeepSpeed engine (with what must outlive it)."""

    tokenizer: Any
    train: EncodedSplit
    test: EncodedSplit
    plan: StepPlan
    loaded: Any  # LoadedModel: holds ZeRO-3's HfDeepSpeedConfig for as long as the engine lives
    engine: Any
    scheduler: Any
    phase_s: dict[str, float]  # seconds per start-up phase (startup/tokenize_s, …): where step 0 waits


def prepare_worker(inputs: WorkerInputs, rank: int, world_size: int) -> PreparedWorker:
    """Encode the splits, plan this rank's steps and build its engine (torch.distributed initialised first)."""
    import deepspeed

    from dynamics.models import load_tokenizer, on_this_node

    config = inputs.train
    clock = time.perf_counter()
    phase_s: dict[str, float] = {}

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phase_s[f"startup/{name}_s"] = now - clock
        clock = now

    template = TEMPLATES.get(config.template)
    source = on_this_node(inputs.model)  # a built-in model saved on the driver may need rebuilding here
    tokenizer = load_tokenizer(source.tokenizer, config.template)
    train = encode_split(inputs.arranged, tokenizer, template, config)
    test = encode_split(inputs.test, tokenizer, template, config)
    phase("tokenize")
    if not train.examples:
        raise ValueError(f"none of the {inputs.arranged.num_rows} training items keeps a reply token")
    plan = StepPlan.of(config, len(train.examples), world_size, rank, inputs.seed)
    if plan.total_steps == 0:
        raise ValueError(
            f"{len(train.examples)} trainable items cannot fill one global batch of {config.global_batch_size} "
            "with train.last_step 'drop'"
        )
    hidden_size = model_hidden_size(source.model)  # ZeRO-3's bucket sizes follow it; read before loading
    ds_config = deepspeed_config(config, plan, hidden_size=hidden_size, has_cuda=torch.cuda.is_available())
    loaded = load_for_training(source.model, tokenizer, config, ds_config, inputs.seed)
    phase("model")
    optimizer = build_optimizer(loaded.model, config)
    scheduler = build_scheduler(optimizer, config, plan.total_steps)
    engine, _, _, _ = deepspeed.initialize(
        model=loaded.model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config, dist_init_required=False
    )
    phase("engine")
    return PreparedWorker(tokenizer, train, test, plan, loaded, engine, scheduler, phase_s)


def train_worker(
    inputs: WorkerInputs,
    rank: int,
    world_size: int,
    store: checkpoints.CheckpointStore | None = None,
    entered_at: float | None = None,
) -> dict[str, float]:
    """Train this rank's share of the trial to the end (torch.distributed already initialised when
    world_size > 1), resuming from `store`'s newest usable checkpoint if it has one; the final metrics."""
    config = inputs.train
    torch.set_num_threads(config.torch_threads)
    started = time.perf_counter()
    prepared = prepare_worker(inputs, rank, world_size)
    tokenizer, train, test, plan = prepared.tokenizer, prepared.train, prepared.test, prepared.plan
    loaded, engine, scheduler = prepared.loaded, prepared.engine, prepared.scheduler
    seed_torch(inputs.seed, rank)  # dropout: reproducible, and different on each rank
    resume_started = time.perf_counter()
    run_id = None if inputs.run is None else inputs.run.run_id
    resumed, skipped = (None, []) if store is None else checkpoints.resume(engine, store, rank, world_size, run_id)
    start, generation = (0, 0) if resumed is None else (resumed.step, resumed.generation)
    _check_ranks_agree(start, world_size)
    evaluation_started = time.perf_counter()
    trial_evaluation = build_trial_evaluation(inputs, tokenizer, test, engine.device, rank, world_size)
    evaluation = trial_evaluation.suite
    logger = _RankZeroLogger(inputs, rank)
    setup = prepared.phase_s | {
        "startup/resume_s": evaluation_started - resume_started,
        "startup/evaluation_s": time.perf_counter() - evaluation_started,
        "worker_setup_s": time.perf_counter() - started,
    }
    if inputs.trial_started_at is not None:
        setup["startup_s"] = time.time() - inputs.trial_started_at  # trial start → ready for step 0
        if entered_at is not None:  # of which: Ray Train's controller, the worker group, imports
            setup["worker_group_start_s"] = entered_at - inputs.trial_started_at
    if resumed is not None:
        logger.resumed(resumed, skipped, time.perf_counter() - resume_started)
    logger.log(
        setup
        | {
            "dropped_items/train": len(train.dropped),
            "dropped_items/test": len(test.dropped),
            "truncated_prompt_items/train": train.prompt_cut,
            "truncated_prompt_items/test": test.prompt_cut,
            "truncated_reply_items/train": train.reply_cut,
            "truncated_reply_items/test": test.reply_cut,
            "dropped_tail_items": plan.dropped_per_epoch * config.epochs,
            "total_steps": plan.total_steps,
            "num_parameters": loaded.num_parameters,
        }
        | trial_evaluation.census,
        step=0,
    )

    def forward(batch: dict[str, torch.Tensor], columns: torch.Tensor) -> torch.Tensor:
        moved = on_device(batch, engine.device)
        keep = columns.to(engine.device)
        return engine(
            input_ids=moved["input_ids"], attention_mask=moved["attention_mask"], logits_to_keep=keep, use_cache=False
        ).logits

    peak = peak_flops_per_device(_device_name(engine.device), config.precision, config.peak_tflops)
    meter = ThroughputMeter(loaded.num_parameters, world_size, peak)
    # positions in the arrangement (before dropping), per step
    consumed: list[list[int]] = [] if resumed is None else resumed.consumed
    metrics: dict[str, float] = {}
    evaluated: dict[int, dict[str, float]] = {}  # step → what this attempt evaluated there
    resume_every = None if inputs.checkpoints is None or store is None else inputs.checkpoints.resume_every
    engine.train()  # from_pretrained returns the model in eval mode; a resumed loop skips the eval that switched it
    writer = eval_checkpoints.BackgroundWriter(inputs.eval_root) if inputs.eval_root else None
    for step in range(start, plan.total_steps + 1):
        continuing = resumed is not None and step == start  # its evaluation and checkpoint happened before
        if evaluation.due(step, plan.total_steps) and not continuing:
            engine.eval()
            metrics = evaluation.evaluate(step, plan.total_steps, forward, engine.module)
            engine.train()
            _check_finite_test_loss(metrics, step, rank, consumed, inputs.arranged)
            logger.log(metrics, step)
            logger.flush()
            evaluated[step] = metrics
        if writer is not None:
            if eval_checkpoints.is_due(inputs.checkpoints, step, plan.total_steps) and not continuing:
                writer.save(engine, tokenizer, step)
            _tag_published(logger, writer.close() if step == plan.total_steps else writer.finished())
        if step == plan.total_steps:
            break
        if resume_every is not None and step % resume_every == 0 and step > 0 and not continuing:
            if writer is not None:  # a resume from here never writes this step's eval checkpoint again
                _tag_published(logger, writer.close())
            logger.flush()  # every point up to this step is in the run before the checkpoint that skips them
            saved = time.perf_counter()
            folder = checkpoints.local_folder(step, rank)
            checkpoints.save(engine, folder, step, rank, world_size, consumed, logger.run_id)
            name = checkpoints.folder_name(step, generation)
            store.publish(folder, name, {"step": step, "checkpoint_save_s": time.perf_counter() - saved})
            logger.log({"checkpoint_s": time.perf_counter() - saved}, step)
            logger.flush()  # a resume never saves this step again: its cost must not wait for a later flush
        lr = scheduler.get_last_lr()[0]  # the rate this step uses: the scheduler moves on after it
        meter.start()
        outcome = train_step(engine, plan, step, train.examples, tokenizer.pad_token_id, world_size)
        meter.stop(outcome.input_tokens)
        consumed.append([train.kept_positions[p] for p in outcome.positions])
        if not math.isfinite(outcome.loss):
            ids = inputs.arranged.column("id").to_pylist()
            raise FloatingPointError(
                f"non-finite training loss at step {step + 1}; rank {rank} items {[ids[p] for p in consumed[-1]]}"
            )
        logger.log({"train_loss": outcome.loss, "lr": lr, PROGRESS_STEP_METRIC: step + 1} | meter.metrics(), step + 1)
        if inputs.after_step is not None:
            inputs.after_step(rank, step + 1, engine)
    memory = _peak_memory(engine.device)
    logger.log(memory, plan.total_steps)
    logger.write_consumed(_gather(consumed, world_size), inputs.arranged.column("id").to_pylist())
    logger.flush()
    selected = _select(inputs, logger, evaluated) if rank == 0 else {}
    logger.log(selected, plan.total_steps)
    logger.flush()
    return {"step": plan.total_steps, **metrics, **meter.metrics(), **memory, **selected}


def _tag_published(logger: _RankZeroLogger, published: list[tuple[int, str]]) -> None:
    """Name each published eval checkpoint in the run (`eval_checkpoint/step-N`): what scoring looks for."""
    if published:
        logger.tag({f"eval_checkpoint/{checkpoints.folder_name(step)}": uri for step, uri in published})


def _select(inputs: WorkerInputs, logger: _RankZeroLogger, evaluated: dict[int, dict[str, float]]) -> dict[str, float]:
    """`selected/…`: the step where evaluate.select's metric is best and the test scores there (none unless
    configured). Rank 0's only (Ray Train takes rank 0's result): it reads the run's whole history, steps a resumed
    attempt did not evaluate included; without a run, what this attempt evaluated."""
    choice = None if inputs.evaluate is None else inputs.evaluate.select
    if choice is None:
        return {}
    prefixes = ("test_", f"{choice.set}_")
    history = logger.history(prefixes) if logger.run_id is not None else _as_history(evaluated)
    return selected_scores(history, choice.set, choice.metric)


def _as_history(evaluated: dict[int, dict[str, float]]) -> dict[str, list[tuple[int, float]]]:
    history: dict[str, list[tuple[int, float]]] = {}
    for step, metrics in sorted(evaluated.items()):
        for key, value in metrics.items():
            history.setdefault(key, []).append((step, value))
    return history


def _peak_memory(device: torch.device) -> dict[str, float]:
    """This rank's peak GPU memory over the trial, in GiB (what sizes the next micro batch); none on a CPU."""
    if device.type != "cuda":
        return {}
    return {
        "peak_memory_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30,
        "peak_memory_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30,
    }


def _check_finite_test_loss(
    metrics: dict[str, float], step: int, rank: int, consumed: list[list[int]], arranged: pa.Table
) -> None:
    """FloatingPointError naming the step and the last items trained on when a test loss is not finite. Every
    rank holds the same reduced metrics, so all ranks stop together instead of rank 0 alone while the others
    wait in the next step's collectives."""
    bad = [key for key, value in metrics.items() if not math.isfinite(value)]
    if not bad:
        return
    last = ""
    if consumed:
        ids = arranged.column("id").to_pylist()
        last = f"; step {step} trained rank {rank} on items {[ids[p] for p in consumed[-1]]}"
    raise FloatingPointError(f"non-finite test loss at step {step} ({bad[0]} = {metrics[bad[0]]}){last}")


def _check_ranks_agree(start: int, world_size: int) -> None:
    """Every rank resumed from the same step, or none of them trains (their batches would not pair up)."""
    if world_size == 1:
        return
    starts: list[Any] = [None] * world_size
    dist.all_gather_object(starts, start)
    if len(set(starts)) != 1:
        raise checkpoints.CheckpointError("of this trial", f"the ranks resumed from different steps: {starts}")


def _gather(consumed: list[list[int]], world_size: int) -> list[list[list[int]]]:
    """Every rank's own record of what it consumed, collected on all ranks."""
    if world_size == 1:
        return [consumed]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, consumed)
    return gathered


class _RankZeroLogger:
    """MLflow logging from rank 0 only; other ranks do nothing."""

    def __init__(self, inputs: WorkerInputs, rank: int):
        self._run = inputs.run if rank == 0 else None
        self._buffer = None
        if self._run is not None:
            # A restarted attempt's run already holds what the dead one logged (after its checkpoint, or from
            # step 0 when it had none): each (key, step) is written once, the first value kept.
            self._buffer = self._run.metric_buffer(skip=self._run.logged_steps())

    def tag(self, tags: dict[str, object]) -> None:
        if self._run is not None:
            self._run.set_tags(tags)

    @property
    def run_id(self) -> str | None:
        return None if self._run is None else self._run.run_id

    def resumed(self, state: checkpoints.ResumeState, skipped: list[str], load_s: float) -> None:
        """Say where the trial continues from, in the log and in the run."""
        for reason in skipped:
            log.warning("skipped a damaged checkpoint: %s", reason)
        if self._run is None:
            return
        log.info("resumed at step %d from %s", state.step, state.folder)
        self._run.set_tags({"resumed_from": state.folder, "skipped_checkpoints": "\n".join(skipped) or "none"})
        self.log({"resume_load_s": load_s, "resumed_at_step": state.step}, state.step)

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._buffer is not None:
            self._buffer.add(metrics, step)

    def flush(self) -> None:
        if self._buffer is not None:
            self._buffer.flush()

    def history(self, prefixes: tuple[str, ...]) -> dict[str, list[tuple[int, float]]]:
        """key → (step, value) from the run for every key starting with one of `prefixes` (per-task ones left
        out: a reader compares trials by their aggregates)."""
        assert self._run is not None
        client = self._run.client
        logged = client.get_run(self._run.run_id).data.metrics
        keys = sorted(key for key in logged if key.startswith(prefixes) and "/task/" not in key)
        return {
            key: [(point.step, point.value) for point in client.get_metric_history(self._run.run_id, key)]
            for key in keys
        }

    def write_consumed(self, per_rank: list[list[list[int]]], train_ids: list[str]) -> None:
        """The audit trail: per rank, per step, the arrangement positions and ids it trained on."""
        if self._run is None:
            return
        record = {
            "world_size": len(per_rank),
            "ranks": [
                [{"positions": step, "ids": [train_ids[p] for p in step]} for step in steps] for steps in per_rank
            ],
        }
        self._run.log_json("consumed.json", record)
