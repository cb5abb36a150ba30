"""Benchmark: what our training loop costs on top of a bare DeepSpeed loop, and what in-loop evaluation costs.

1. Step time. The real per-worker loop (`dynamics.train.loop.train_worker`, single process, world size 1, gloo)
   trains a tiny built-in LLaMA on built-in rows; a bare DeepSpeed loop (pre-collated batches already on the
   device, `engine(...)`, `backward`, `step`, nothing else) trains the same weights on the same micro-batches
   with the same engine config and optimizer. Our loop's step time is read from outside it, between the ends of
   its step-0 and final evaluations (wrapped here), so collation, device moves, the plan, metric buffering and
   the finite-loss check all count against it; each step's time runs from its start to the next one's. Repeated
   A, B, A, B; the ratio is of the median steps over all runs (whole runs shift by ±7% on a busy 2-core box).
   Target: ratio ≤ 1.05.
2. Evaluation share at Study B's cadence (evaluate every 10 optimizer steps and at step 0, 5 examples per test
   task): time inside `InLoopEvaluation.evaluate` (wrapped here) over the loop's whole time, and the same share
   for one 10-step interval of a long run (where the extra step-0 evaluation no longer counts). Measured twice:
   test loss alone, and test loss with Study B's generation metrics on every test item (ROUGE-1/L, exact match
   and a tiny reward model's score; greedy, 32 new tokens, the offline study's settings) at every evaluation.
   From the two, one generation pass costs their difference per evaluation; the steady share is then given for
   generation every 10, 20 and 50 steps beside loss every 10. Target ≤ 10%.
3. The same generation metrics scored beside the loop (`evaluate.on_checkpoints`, while training): loss stays
   in the loop every 10 steps, an eval checkpoint is published at each of those steps (its write in a
   background thread), and a scorer thread hands each to a Ray task on the cores the loop leaves free. The
   loop's share is its loss passes and checkpoint copies over the trial (the loop plus the wait for the last
   scores after it), and per 10-step interval of a long run; the steps scored are read back from MLflow.

The last line printed is one JSON object. Run from the repository root:

    python -m bench.train_overhead                 # ~2 min on 2 cores
    python -m bench.train_overhead --steps 60 --hidden-size 512 --intermediate-size 1376
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from dynamics.config import (
    BuiltinModelConfig,
    CheckpointConfig,
    CheckpointMetrics,
    EvaluateConfig,
    ModelConfig,
    RewardModelConfig,
    ScalingConfig,
    TrainConfig,
)
from dynamics.data.builtin import generate_builtin
from dynamics.evaluate.runner import InLoopEvaluation
from dynamics.models import load_model, load_tokenizer, materialise
from dynamics.models.reward import materialise_reward_model
from dynamics.text.batching import collate, token_nll
from dynamics.text.templates import TEMPLATES
from dynamics.tracking import start_sweep_run, start_trial_run
from dynamics.train import eval_checkpoints, loop
from dynamics.train.checkpoint_scoring import trial_scorer
from dynamics.train.deepspeed_setup import deepspeed_config
from dynamics.train.optimizer import build_optimizer, build_scheduler
from dynamics.train.sharding import StepPlan
from dynamics.train.steps import on_device


def _init_single_process() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    )
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    deepspeed.utils.logger.setLevel(logging.WARNING)
    deepspeed.init_distributed("gloo")


def _tables(per_train_task: int, per_test_task: int, seed: int) -> tuple[pa.Table, pa.Table]:
    table = generate_builtin(per_train_task, per_test_task, seed)
    splits = table.column("split").to_pylist()
    train = table.filter(pa.array([split == "train" for split in splits]))
    test = table.filter(pa.array([split == "test" for split in splits]))
    return train.select(["id", "messages"]), test.select(["id", "task", "category", "messages", "references"])


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The tiny built-in LLaMA's sizes and ZeRO stage, shared by the training benchmarks."""
    parser.add_argument("--hidden-size", type=int, default=256, help="default: the offline config's tiny-2m")
    parser.add_argument("--intermediate-size", type=int, default=688)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--zero-stage", type=int, default=2, choices=(0, 1, 2, 3))


def bench_inputs(args: argparse.Namespace, global_batch: int, folder: Path):
    """(model source, arranged rows for `args.steps` steps, test rows): built-in data, the model saved in `folder`."""
    arranged, test = _tables(-(-args.steps * global_batch // 36), per_test_task=5, seed=0)  # 36 train tasks
    sizes = BuiltinModelConfig(
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
    )
    source = materialise("bench", ModelConfig(builtin=sizes), folder)
    return source, arranged.slice(0, args.steps * global_batch), test


class _Timeline:
    """Wall-clock marks around every evaluation and at the start of every step, taken from outside the loop."""

    def __init__(self) -> None:
        self.evaluations: list[tuple[float, float]] = []
        self.step_starts: list[float] = []
        self.saves: list[tuple[float, float]] = []  # eval checkpoints written by the loop
        self._original = InLoopEvaluation.evaluate
        self._original_step = loop.train_step
        self._original_save = eval_checkpoints.BackgroundWriter.save

    def __enter__(self) -> _Timeline:
        original, evaluations, starts, original_step = (
            self._original,
            self.evaluations,
            self.step_starts,
            self._original_step,
        )

        def marked_step(*args: Any, **kwargs: Any) -> Any:
            starts.append(time.perf_counter())
            return original_step(*args, **kwargs)

        def timed(evaluation: InLoopEvaluation, *args: Any) -> dict[str, float]:
            begin = time.perf_counter()
            try:
                return original(evaluation, *args)
            finally:
                evaluations.append((begin, time.perf_counter()))

        def timed_save(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return original_save(*args, **kwargs)
            finally:
                saves.append((begin, time.perf_counter()))

        original_save, saves = self._original_save, self.saves
        InLoopEvaluation.evaluate = timed
        loop.train_step = marked_step
        eval_checkpoints.BackgroundWriter.save = timed_save
        return self

    def __exit__(self, *exc: object) -> None:
        InLoopEvaluation.evaluate = self._original
        loop.train_step = self._original_step
        eval_checkpoints.BackgroundWriter.save = self._original_save


def _intervals(starts: list[float], end: float) -> list[float]:
    """Seconds from each step's start to the next's (the last: to `end`): all the loop does per step."""
    marks = [*starts, end]
    return [later - earlier for earlier, later in zip(marks, marks[1:], strict=False)]


def run_our_loop(inputs: loop.WorkerInputs) -> tuple[float, float, float, list[float]]:
    """(seconds of training between the first and last evaluations, seconds evaluating, whole loop seconds,
    per-step seconds when no evaluation falls between two steps)."""
    with _Timeline() as timeline:
        loop.train_worker(inputs, rank=0, world_size=1)
    marks = timeline.evaluations
    evaluating = sum(end - begin for begin, end in marks)
    whole = marks[-1][1] - marks[0][0]
    training = (marks[-1][0] - marks[0][1]) - sum(end - begin for begin, end in marks[1:-1])
    per_step = _intervals(timeline.step_starts, marks[-1][0]) if len(marks) == 2 else []
    return training, evaluating, whole, per_step


def run_bare_loop(inputs: loop.WorkerInputs) -> tuple[float, list[float]]:
    """Seconds for the same steps on the same weights in the plainest DeepSpeed loop, and per step."""
    import deepspeed

    config = inputs.train
    template = TEMPLATES.get(config.template)
    tokenizer = load_tokenizer(inputs.model.tokenizer, config.template)
    split = loop.encode_split(inputs.arranged, tokenizer, template, config)
    plan = StepPlan.of(config, len(split.examples), 1, 0, inputs.seed)
    torch.manual_seed(inputs.seed)
    model = load_model(inputs.model.model, tokenizer, torch.float32)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, plan.total_steps)
    ds_config = deepspeed_config(config, plan, hidden_size=model.config.hidden_size, has_cuda=False)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config, dist_init_required=False
    )
    engine.train()
    steps = [
        [
            on_device(collate([split.examples[p] for p in micro.positions], tokenizer.pad_token_id), engine.device)
            for micro in plan.micro_batches(step)
        ]
        for step in range(plan.total_steps)
    ]
    with torch.no_grad():  # our loop's timing starts after its step-0 evaluation, warm: so does this one
        engine(input_ids=steps[0][0]["input_ids"], attention_mask=steps[0][0]["attention_mask"], use_cache=False)
    begin = time.perf_counter()
    starts = []
    for micro_batches in steps:
        starts.append(time.perf_counter())
        for batch in micro_batches:
            logits = engine(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
            ).logits
            nll_sum, count = token_nll(logits, batch["labels"])
            engine.backward(nll_sum.sum() / count.sum())
            engine.step()
    end = time.perf_counter()
    return end - begin, _intervals(starts, end)


TINY_REWARD_SIZES = {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4}


def _eval_shares(inputs: loop.WorkerInputs, steps: int) -> tuple[float, float, int, float, float, float]:
    """(share of the loop spent evaluating, the same for one 10-step interval of a long run, evaluations,
    seconds evaluating, whole loop seconds, seconds training) at one evaluation every 10 steps and at step 0."""
    training_s, evaluating_s, whole_s, _ = run_our_loop(inputs)
    # A long run (Study B trains hundreds of steps) has one evaluation per 10 steps; this short one has
    # steps/10 + 1, the step-0 one extra. The steady share: one evaluation against itself plus 10 steps.
    evaluations = steps // 10 + 1
    one_eval_s, ten_steps_s = evaluating_s / evaluations, training_s / steps * 10
    steady = one_eval_s / (one_eval_s + ten_steps_s)
    return evaluating_s / whole_s, steady, evaluations, evaluating_s, whole_s, training_s


def _beside_scoring(inputs: loop.WorkerInputs, scored: CheckpointMetrics, steps: int) -> dict[str, float]:
    """The loop with test loss every 10 steps and an eval checkpoint at each of those steps, which a scorer (a
    thread here, as in a trial's driver) hands to Ray tasks on the machine's other core while the loop goes on.
    What the loop pays: its loss passes and checkpoint writes; what the trial pays in all: the loop plus the wait
    for the last scores after its end."""
    assert inputs.run is not None and inputs.evaluate is not None
    scorer = trial_scorer(
        inputs.run,
        scored,
        inputs.train,
        inputs.evaluate,
        ScalingConfig(num_workers=1, cpus_per_worker=1),
        inputs.test,
        inputs.model,
        inputs.reward_model,
        inputs.seed,
        poll_s=0.5,  # a trial's 2 s would stretch this short run's tail
    )
    with _Timeline() as timeline:
        scorer.start()
        loop.train_worker(inputs, rank=0, world_size=1)
        loop_end = time.perf_counter()
        scorer.finish()
        done = time.perf_counter()
    history = inputs.run.client.get_metric_history(inputs.run.run_id, "test_rouge_l/macro")  # what the run holds
    scored_steps = sorted(point.step for point in history)
    marks, saves = timeline.evaluations, timeline.saves
    evaluating = sum(end - begin for begin, end in marks)
    saving = sum(end - begin for begin, end in saves)
    whole = loop_end - marks[0][0]
    training = whole - evaluating - saving - (loop_end - marks[-1][1])
    one_pause = evaluating / len(marks) + saving / len(saves)  # a loss pass and a checkpoint write, every 10 steps
    return {
        "share": (evaluating + saving) / (whole + done - loop_end),
        "steady_share": one_pause / (one_pause + training / steps * 10),
        "loss_s": evaluating,
        "save_s": saving,
        "save_ms_each": saving / len(saves) * 1e3,
        "loop_s": whole,
        "wait_after_loop_s": done - loop_end,
        "step_s": training / steps,
        "scored_steps": scored_steps,
    }


def _start_local_ray(cpus: int) -> None:
    """An embedded Ray on 127.0.0.1 for the scoring tasks, with the environment a sweep gives its workers."""
    from dynamics.config import SweepConfig
    from dynamics.sweep.runtime import prepare_environment, start_ray

    sizes = BuiltinModelConfig(**TINY_REWARD_SIZES)  # any built-in model: only the environment counts here
    start_ray(prepare_environment(SweepConfig(models={"m": ModelConfig(builtin=sizes)}, grid={"model": ["m"]})), cpus)


def training_s_of(shares: tuple[float, float, int, float, float, float], steps: int) -> float:
    """Seconds per optimizer step of a measured run."""
    return shares[5] / steps


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run (a multiple of 10)")
    add_model_arguments(parser)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (workers use 1)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each loop; the fastest counts")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _init_single_process()

    global_batch = 16
    folder = Path(tempfile.mkdtemp(prefix="train-overhead-"))
    source, arranged, test = bench_inputs(args, global_batch, folder)
    base = dict(
        template="study_b",
        global_batch_size=global_batch,
        micro_batch_size=8,
        zero_stage=args.zero_stage,
        precision="fp32",
        max_length=256,
        torch_threads=args.threads,
    )
    # A real MLflow run, as a trial has: rank 0 buffers every step's metrics and writes them at each evaluation.
    sweep = start_sweep_run(f"sqlite:///{folder / 'mlflow.db'}", "train-overhead", "bench", {})
    timing_config, cadence_config = TrainConfig(**base, eval_every=10**6), TrainConfig(**base, eval_every=10)
    timing = loop.WorkerInputs(source, timing_config, arranged, test, run=start_trial_run(sweep, "timing", {}), seed=0)
    cadence = loop.WorkerInputs(
        source, cadence_config, arranged, test, run=start_trial_run(sweep, "cadence", {}), seed=0
    )
    reward = RewardModelConfig(builtin=BuiltinModelConfig(**TINY_REWARD_SIZES), batch_size=32)
    generating = EvaluateConfig(
        in_loop=[{"metrics": ["rouge1", "rouge_l", "exact_match", "reward"], "every": 10}],
        max_new_tokens=32,
        batch_size=32,
        reward_model=reward,
    )
    with_generation = loop.WorkerInputs(
        source,
        cadence_config,
        arranged,
        test,
        run=start_trial_run(sweep, "cadence-generation", {}),
        seed=0,
        evaluate=generating,
        reward_model=materialise_reward_model(reward, folder),
    )
    scored = CheckpointMetrics(metrics=list(generating.in_loop[0].metrics), delete_checkpoints=True)
    beside_scoring = loop.WorkerInputs(
        source,
        cadence_config,
        arranged,
        test,
        run=start_trial_run(sweep, "cadence-beside-scoring", {}),
        seed=0,
        checkpoints=CheckpointConfig(eval_every=10),
        eval_root=str(folder / "eval"),
        evaluate=generating.model_copy(update={"in_loop": []}),
        reward_model=with_generation.reward_model,
    )
    print(
        f"tiny LLaMA {args.hidden_size}/{args.intermediate_size}, {args.layers} layers, {source.num_parameters:,} "
        f"parameters, fp32, ZeRO {args.zero_stage}; {arranged.num_rows} train rows = {args.steps} steps of "
        f"{global_batch}; {test.num_rows} test rows (5 per test task); {args.threads} thread(s), {os.cpu_count()} CPUs"
    )

    ours, bare, our_steps, bare_steps = [], [], [], []
    for _ in range(args.repeats):
        training, _, _, per_step = run_our_loop(timing)
        ours.append(training)
        our_steps += per_step
        total, per_step = run_bare_loop(timing)
        bare.append(total)
        bare_steps += per_step
    ours_s, bare_s = min(ours), min(bare)
    # The median step of all runs: a busy 2-core machine shifts whole runs by ±7%, single steps far less often.
    our_median, bare_median = statistics.median(our_steps), statistics.median(bare_steps)
    loss_only = _eval_shares(cadence, args.steps)
    generation = _eval_shares(with_generation, args.steps)
    _start_local_ray(cpus=max(1, (os.cpu_count() or 2) - args.threads))  # the cores the loop leaves free
    beside = _beside_scoring(beside_scoring, scored, args.steps)
    share, steady_share, evaluations, evaluating_s, whole_s, _ = loss_only
    print(f"our loop: {ours_s / args.steps * 1e3:.1f} ms/step (runs {', '.join(f'{s:.2f}' for s in ours)} s)")
    print(f"bare DeepSpeed: {bare_s / args.steps * 1e3:.1f} ms/step (runs {', '.join(f'{s:.2f}' for s in bare)} s)")
    print(
        f"ratio ours / bare: median step {our_median * 1e3:.1f} / {bare_median * 1e3:.1f} ms = "
        f"{our_median / bare_median:.3f} (target <= 1.05); whole runs {ours_s / bare_s:.3f}"
    )
    step_s = training_s_of(loss_only, args.steps)
    loss_eval_s = loss_only[3] / loss_only[2]
    generation_eval_s = max(0.0, generation[3] / generation[2] - loss_eval_s)
    steady_by_cadence = {
        every: (loss_eval_s / 10 + generation_eval_s / every) / (step_s + loss_eval_s / 10 + generation_eval_s / every)
        for every in (10, 20, 50)
    }
    for label, (share_of, steady_of, count, seconds, whole, _) in (
        ("test loss", loss_only),
        ("+ generation", generation),
    ):
        print(
            f"evaluation every 10 steps on {test.num_rows} examples, {label}: {seconds:.2f} s of {whole:.2f} s "
            f"= {100 * share_of:.1f}% over {count} evaluations; {100 * steady_of:.1f}% per 10-step interval of a "
            "long run (target <= 10%)"
        )
    print(
        f"one generation pass {generation_eval_s:.2f} s, one loss pass {loss_eval_s:.2f} s, "
        f"a step {step_s * 1e3:.0f} ms: "
        + ", ".join(f"generation every {k} → {100 * v:.1f}%" for k, v in steady_by_cadence.items())
        + " of a long run (loss every 10)"
    )
    print(
        f"generation metrics scored on eval checkpoints beside the loop (Ray tasks on the other core): the loop "
        f"paid {beside['loss_s']:.2f} s of loss passes + {beside['save_s']:.2f} s of checkpoint writes "
        f"({beside['save_ms_each']:.0f} ms each) in {beside['loop_s']:.2f} s, then waited "
        f"{beside['wait_after_loop_s']:.2f} s for the last scores = {100 * beside['share']:.1f}% of the trial; "
        f"{100 * beside['steady_share']:.1f}% per 10-step interval of a long run (target <= 10%); a step "
        f"{beside['step_s'] * 1e3:.0f} ms beside the scoring vs {step_s * 1e3:.0f} ms alone; steps scored "
        f"{beside['scored_steps']}"
    )
    summary = {
        "steps": args.steps,
        "our_step_ms": round(ours_s / args.steps * 1e3, 2),
        "bare_step_ms": round(bare_s / args.steps * 1e3, 2),
        "our_median_step_ms": round(our_median * 1e3, 2),
        "bare_median_step_ms": round(bare_median * 1e3, 2),
        "step_time_ratio": round(our_median / bare_median, 4),
        "whole_run_ratio": round(ours_s / bare_s, 4),
        "eval_share": round(share, 4),
        "eval_share_steady": round(steady_share, 4),
        "eval_share_with_generation": round(generation[0], 4),
        "eval_share_steady_with_generation": round(generation[1], 4),
        "eval_s_with_generation": round(generation[3], 3),
        "generation_eval_s": round(generation_eval_s, 3),
        "loss_eval_s": round(loss_eval_s, 3),
        **{f"eval_share_steady_generation_every_{k}": round(v, 4) for k, v in steady_by_cadence.items()},
        "evaluations": evaluations,
        "eval_s": round(evaluating_s, 3),
        "loop_s": round(whole_s, 3),
        "test_examples": test.num_rows,
        "eval_share_beside_scoring": round(beside["share"], 4),
        "eval_share_steady_beside_scoring": round(beside["steady_share"], 4),
        "eval_checkpoint_write_ms": round(beside["save_ms_each"], 1),
        "wait_for_scores_after_loop_s": round(beside["wait_after_loop_s"], 3),
        "step_ms_beside_scoring": round(beside["step_s"] * 1e3, 2),
        "steps_scored_beside": len(beside["scored_steps"]),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
