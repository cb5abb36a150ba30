"""Benchmark: what resume checkpoints cost a trial (tiny built-in LLaMA, single process, world size 1, gloo).

1. One checkpoint: a prepared engine trains a few steps, then `dynamics.train.checkpoints.save` writes its whole
   state (DeepSpeed model, ZeRO optimizer partition, scheduler, RNG, data record, manifest) to a local folder
   and publishes it to a local store (a copy, as Ray's upload to a local `storage_path` is); timed from outside,
   repeated, median. Size: the bytes in the published folder, and bytes per parameter.
2. The same through Ray Train, as a trial does it: one worker of a `TorchTrainer` saves and publishes with
   `ray.train.report(checkpoint=…)` (Ray uploads the folder to a local `storage_path` and the report waits for
   the controller's poll, `RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`, set here as in the tests), repeated, median.
3. Share of trial time at `resume_every` = 50: one save (the Ray figure) against itself plus 50 median steps.
4. Whole trials, as a cross-check: `train_worker` with no checkpoints (the baseline) and with `resume_every` = 50
   and a folder store, the same steps, evaluation every 10; the ratio of their wall times. Whole runs shift by
   ±7% on a busy 2-core box, more than the cost measured, so (3) is the figure to read.

The last line printed is one JSON object. Run from the repository root:

    python -m bench.checkpoint_overhead            # ~4 min on 2 cores
    python -m bench.checkpoint_overhead --steps 200 --hidden-size 512 --intermediate-size 1376
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.train_overhead import _init_single_process, add_model_arguments, bench_inputs
from dynamics.config import CheckpointConfig, TrainConfig
from dynamics.train import checkpoints, loop
from dynamics.train.steps import train_step

RESUME_EVERY = 50


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def time_one_checkpoint(inputs: loop.WorkerInputs, saves: int, steps: int) -> dict[str, float]:
    """Median seconds of a save and of a training step on one engine, and the size of one checkpoint."""
    prepared = loop.prepare_worker(inputs, rank=0, world_size=1)
    prepared.engine.train()
    pad = prepared.tokenizer.pad_token_id
    step_times = []
    for step in range(steps):
        begin = time.perf_counter()
        train_step(prepared.engine, prepared.plan, step, prepared.train.examples, pad, 1)
        step_times.append(time.perf_counter() - begin)
    root = Path(tempfile.mkdtemp(prefix="checkpoint-bench-"))
    store = checkpoints.FolderStore(root)
    save_times, size = [], 0
    for index in range(saves):
        begin = time.perf_counter()
        folder = checkpoints.local_folder(steps, 0)
        checkpoints.save(prepared.engine, folder, steps, 0, 1, [[0]] * steps, run_id=None)
        name = checkpoints.folder_name(steps, index)
        store.publish(folder, name, {})
        save_times.append(time.perf_counter() - begin)
        size = _folder_bytes(root / name)
    shutil.rmtree(root, ignore_errors=True)
    return {
        "save_s": statistics.median(save_times),
        "step_s": statistics.median(step_times[1:]),  # the first step warms up
        "size_bytes": size,
    }


def _ray_saves(loop_config: dict[str, Any]) -> None:
    """In a Ray Train worker: train a few steps, then time `saves` checkpoints published through Ray."""
    import ray.train

    inputs, saves = loop_config["inputs"], loop_config["saves"]
    prepared = loop.prepare_worker(inputs, rank=0, world_size=1)
    prepared.engine.train()
    for step in range(2):
        train_step(prepared.engine, prepared.plan, step, prepared.train.examples, prepared.tokenizer.pad_token_id, 1)
    store, times = checkpoints.RayStore(), []
    for index in range(saves):
        begin = time.perf_counter()
        folder = checkpoints.local_folder(2, 0)
        checkpoints.save(prepared.engine, folder, 2, 0, 1, [[0], [1]], run_id=None)
        store.publish(folder, checkpoints.folder_name(2, index), {"step": 2})
        times.append(time.perf_counter() - begin)
    Path(loop_config["out"]).write_text(json.dumps(times))
    ray.train.report({})


def time_ray_checkpoint(inputs: loop.WorkerInputs, saves: int, storage: Path) -> float:
    """Median seconds of one save published through `ray.train.report` to a local storage path."""
    import ray
    from ray.train import CheckpointConfig as RayCheckpointConfig
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    storage.mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        TorchTrainer(
            _ray_saves,
            train_loop_config={"inputs": inputs, "saves": saves, "out": str(storage / "times.json")},
            scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(
                name="checkpoints", storage_path=str(storage), checkpoint_config=RayCheckpointConfig(num_to_keep=2)
            ),
        ).fit()
    finally:
        ray.shutdown()
    return statistics.median(json.loads((storage / "times.json").read_text()))


def time_trial(inputs: loop.WorkerInputs, store: checkpoints.CheckpointStore | None) -> float:
    begin = time.perf_counter()
    loop.train_worker(inputs, rank=0, world_size=1, store=store)
    return time.perf_counter() - begin


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps of each whole trial")
    parser.add_argument("--saves", type=int, default=5, help="checkpoints timed in (1) and (2)")
    parser.add_argument("--repeats", type=int, default=2, help="whole trials of each kind; the fastest counts")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    _init_single_process()

    global_batch = 16
    workdir = Path(tempfile.mkdtemp(prefix="checkpoint-overhead-"))
    source, arranged, test = bench_inputs(args, global_batch, workdir)
    train = TrainConfig(
        global_batch_size=global_batch, micro_batch_size=8, zero_stage=args.zero_stage, max_length=256, eval_every=10
    )
    plain = loop.WorkerInputs(source, train, arranged, test, seed=0)
    checkpointed = loop.WorkerInputs(
        source, train, arranged, test, seed=0, checkpoints=CheckpointConfig(resume_every=RESUME_EVERY)
    )
    print(
        f"tiny LLaMA {args.hidden_size}/{args.intermediate_size}, {args.layers} layers, {source.num_parameters:,} "
        f"parameters, fp32, ZeRO {args.zero_stage}, 1 rank; {args.steps} steps of {global_batch}; {os.cpu_count()} CPUs"
    )

    one = time_one_checkpoint(plain, args.saves, steps=min(12, args.steps))
    print(
        f"one checkpoint: {one['save_s'] * 1e3:.0f} ms to save and publish to a folder (median of {args.saves}), "
        f"{one['size_bytes'] / 2**20:.1f} MiB = {one['size_bytes'] / source.num_parameters:.1f} bytes/parameter; "
        f"a step: {one['step_s'] * 1e3:.0f} ms"
    )
    # Whole trials before Ray starts (its processes linger after shutdown); A, B, A, B, the fastest of each.
    baselines, withs = [], []
    for repeat in range(args.repeats):
        baselines.append(time_trial(plain, None))
        store_root = workdir / f"store{repeat}"
        withs.append(time_trial(checkpointed, checkpoints.FolderStore(store_root)))
    kept = sorted(path.name for path in store_root.glob("step-*"))
    baseline_s, with_s = min(baselines), min(withs)
    print(
        f"whole trials: {baseline_s:.1f} s without checkpoints, {with_s:.1f} s with {len(kept)} ({', '.join(kept)}), "
        f"fastest of {args.repeats} each: ratio {with_s / baseline_s:.3f}"
    )

    ray_save_s = time_ray_checkpoint(plain, args.saves, workdir / "ray")
    share = ray_save_s / (ray_save_s + RESUME_EVERY * one["step_s"])
    print(f"through Ray Train (report + upload to a local storage_path): {ray_save_s * 1e3:.0f} ms (median)")
    print(f"share of trial time checkpointing at resume_every={RESUME_EVERY}: {100 * share:.2f}%")
    shutil.rmtree(workdir, ignore_errors=True)
    summary = {
        "num_parameters": source.num_parameters,
        "checkpoint_save_s": round(one["save_s"], 4),
        "checkpoint_save_ray_s": round(ray_save_s, 4),
        "checkpoint_size_mib": round(one["size_bytes"] / 2**20, 2),
        "checkpoint_bytes_per_parameter": round(one["size_bytes"] / source.num_parameters, 2),
        "step_s": round(one["step_s"], 4),
        "resume_every": RESUME_EVERY,
        "checkpoint_share_at_resume_every": round(share, 4),
        "whole_trial_steps": args.steps,
        "whole_trial_checkpoints": len(kept),
        "whole_trial_without_s": round(baseline_s, 2),
        "whole_trial_with_s": round(with_s, 2),
        "whole_trial_ratio": round(with_s / baseline_s, 4),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
