"""Benchmark: cost of the DeepSpeed engine per optimizer step against a plain PyTorch loop doing the same work.

Both loops train the same tiny built-in LLaMA (same seed, fp32) on the same micro-batches of encoded built-in
training rows, with the same AdamW, learning-rate schedule, gradient clipping and gradient accumulation. The
DeepSpeed loop runs as `dynamics.train.loop` does (engine.backward and engine.step per micro-batch, config from
`deepspeed_config`), single process, world size 1, gloo. The two loops alternate step by step, so a
background job slows both alike. The last line printed is one JSON object.

The first DeepSpeed use on a machine builds a communication op (~50 s, then cached); that happens in the
engine set-up, which is reported but not timed. Run from the repository root:

    python -m bench.train_step                      # laptop: ZeRO 2, 30 timed steps, 1 thread, ~30 s on 2 cores
    python -m bench.train_step --zero-stage 0       # losses should agree with torch to ~1e-4
    python -m bench.train_step --threads 4 --hidden-size 512 --intermediate-size 1376   # bigger node
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.fresh import max_rss_mb
from dynamics.config import BuiltinModelConfig, TrainConfig
from dynamics.data.builtin import generate_builtin
from dynamics.models import build_builtin_model, builtin_tokenizer
from dynamics.text.batching import collate, token_nll
from dynamics.text.encoding import EncodedExample, encode
from dynamics.text.templates import TEMPLATES
from dynamics.train.deepspeed_setup import deepspeed_config, lr_lambda
from dynamics.train.sharding import StepPlan

Batch = dict[str, torch.Tensor]  # input_ids / attention_mask / labels, (batch, longest) int64
# Spread of the paired per-step ratios (interquartile range over the median) above which timings are flagged.
_NOISY_SPREAD = 0.15


@dataclass
class LoopRecord:
    """Per optimizer step: wall seconds and token-averaged training loss."""

    seconds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def encode_train_rows(config: TrainConfig, tokenizer, per_train_task: int, seed: int) -> list[EncodedExample]:
    """The built-in train rows in generated order, encoded; rows left without a target token are dropped."""
    table = generate_builtin(per_train_task, 8, seed)
    splits, conversations = table.column("split").to_pylist(), table.column("messages").to_pylist()
    template = TEMPLATES.get(config.template)
    encoded = (
        encode(messages, tokenizer, template, config.max_length)
        for split, messages in zip(splits, conversations, strict=True)
        if split == "train"
    )
    return [example for example in encoded if example is not None]


def step_batches(examples: Sequence[EncodedExample], plan: StepPlan, pad_id: int, num_steps: int) -> list[list[Batch]]:
    """Per optimizer step, its collated micro-batches, as the training loop would draw them."""
    return [
        [collate([examples[p] for p in micro.positions], pad_id) for micro in plan.micro_batches(step)]
        for step in range(num_steps)
    ]


def torch_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    micro_batches: Sequence[Batch],
    grad_clip: float,
) -> float:
    """One optimizer step of plain torch; returns the step's token-averaged loss."""
    nll_total, count_total = 0.0, 0.0
    for batch in micro_batches:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        nll_sum, count = token_nll(logits, batch["labels"])  # (batch,) float32 each
        loss = nll_sum.sum() / count.sum()
        (loss / len(micro_batches)).backward()
        nll_total += nll_sum.sum().item()
        count_total += count.sum().item()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return nll_total / count_total


def deepspeed_step(engine, micro_batches: Sequence[Batch]) -> float:
    """One optimizer step through the engine, as `dynamics.train.loop` takes it; returns the step's loss."""
    nll_total, count_total = 0.0, 0.0
    for batch in micro_batches:
        logits = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        nll_sum, count = token_nll(logits, batch["labels"])
        engine.backward(nll_sum.sum() / count.sum())  # the engine divides by the accumulation steps
        engine.step()
        nll_total += nll_sum.sum().item()
        count_total += count.sum().item()
    return nll_total / count_total


def start_deepspeed(model: torch.nn.Module, config: TrainConfig, plan: StepPlan, total_steps: int):
    """A DeepSpeed engine over `model` with a torch AdamW and the SPEC §3 schedule, single-process gloo."""
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(_free_port()),
            "RANK": "0",
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "1",
            # Read when deepspeed is imported: the baseline runs on CPU, so must the engine.
            "DS_ACCELERATOR": "cpu",
        }
    )
    import deepspeed

    deepspeed.utils.logger.setLevel(logging.WARNING)
    deepspeed.init_distributed("gloo")
    optimizer, scheduler = make_optimizer(model, config, total_steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(config, plan)
    )
    engine.train()
    return engine


def make_optimizer(
    model: torch.nn.Module, config: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW and the SPEC §3 schedule, stretched over `total_steps` so both loops decay alike."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, total_steps))


def run_interleaved(
    steps: list[list[Batch]], torch_run: Callable[[list[Batch]], float], ds_run: Callable[[list[Batch]], float]
) -> tuple[LoopRecord, LoopRecord]:
    """Both loops over the same steps, alternating which goes first so neither always follows the other."""
    records = (LoopRecord(), LoopRecord())
    runs = (torch_run, ds_run)
    for index, micro_batches in enumerate(steps):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for which in order:
            started = time.perf_counter()
            loss = runs[which](micro_batches)
            records[which].seconds.append(time.perf_counter() - started)
            records[which].losses.append(loss)
    return records


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zero-stage", type=int, default=2, choices=(0, 1, 2, 3), help="DeepSpeed ZeRO stage")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per loop")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed optimizer steps per loop first")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (workers use 1)")
    parser.add_argument("--hidden-size", type=int, default=256, help="default: the offline config's tiny-2m")
    parser.add_argument("--intermediate-size", type=int, default=688)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--global-batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256, help="tokens per example")
    parser.add_argument("--per-train-task", type=int, default=40, help="built-in rows per train task")
    parser.add_argument("--data-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup_steps < 0 or args.threads < 1:
        parser.error("--steps and --threads must be at least 1, --warmup-steps at least 0")
    torch.set_num_threads(args.threads)

    model_config = BuiltinModelConfig(
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
    )
    config = TrainConfig(
        template="study_b",
        global_batch_size=args.global_batch_size,
        micro_batch_size=args.micro_batch_size,
        max_length=args.max_length,
        zero_stage=args.zero_stage,
        precision="fp32",
        torch_threads=args.threads,
    )
    tokenizer = builtin_tokenizer()
    examples = encode_train_rows(config, tokenizer, args.per_train_task, args.data_seed)
    total_steps = args.warmup_steps + args.steps
    steps_per_epoch = len(examples) // config.global_batch_size
    if steps_per_epoch == 0:
        parser.error(f"{len(examples)} train rows cannot fill one global batch of {config.global_batch_size}")
    epochs = -(-total_steps // steps_per_epoch)  # the data repeats when more steps are asked for than it fills
    # 'drop': every step is a full one (no empty micro-batch, every loss weight 1), as the torch loop assumes.
    plan = StepPlan(
        len(examples), config.global_batch_size, config.micro_batch_size, 1, 0, epochs=epochs, last_step="drop"
    )
    steps = step_batches(examples, plan, tokenizer.pad_token_id, total_steps)

    baseline = build_builtin_model(model_config, vocab_size=len(tokenizer))
    baseline.train()
    optimizer, scheduler = make_optimizer(baseline, config, total_steps)
    candidate = build_builtin_model(model_config, vocab_size=len(tokenizer))  # same seed → same weights
    started = time.perf_counter()
    engine = start_deepspeed(candidate, config, plan, total_steps)
    setup_s = time.perf_counter() - started
    torch.set_num_threads(args.threads)  # in case anything imported above changed it

    tokens = [sum(int(batch["attention_mask"].sum()) for batch in micro) for micro in steps]  # input tokens
    print(
        f"tiny LLaMA {model_config.hidden_size}/{model_config.intermediate_size}, {model_config.num_hidden_layers} "
        f"layers, {model_config.num_attention_heads} heads, {baseline.num_parameters():,} parameters, fp32; "
        f"{len(examples)} train rows, global batch {plan.global_batch_size} = {plan.accumulation_steps} x "
        f"micro {plan.micro_batch_size}"
    )
    print(
        f"ZeRO stage {args.zero_stage}, {args.warmup_steps} warm-up + {args.steps} timed steps per loop, "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
        f"DeepSpeed set-up {setup_s:.1f} s (untimed)"
    )

    def run_torch(micro_batches: list[Batch]) -> float:
        return torch_step(baseline, optimizer, scheduler, micro_batches, config.grad_clip)

    def run_deepspeed(micro_batches: list[Batch]) -> float:
        return deepspeed_step(engine, micro_batches)

    torch_record, ds_record = run_interleaved(steps, run_torch, run_deepspeed)
    timed = slice(args.warmup_steps, None)
    timed_tokens = sum(tokens[timed])
    torch_s, ds_s = sum(torch_record.seconds[timed]), sum(ds_record.seconds[timed])
    loss_diffs = [abs(a - b) for a, b in zip(torch_record.losses, ds_record.losses, strict=True)]
    ratios = [d / t for t, d in zip(torch_record.seconds[timed], ds_record.seconds[timed], strict=True)]
    low, median, high = _quartiles(ratios)

    for name, record, seconds in (("torch", torch_record, torch_s), ("deepspeed", ds_record, ds_s)):
        per_step = [s * 1e3 for s in record.seconds[timed]]  # ms
        print(
            f"{name:>9}: {seconds / args.steps * 1e3:7.1f} ms/step mean, {statistics.median(per_step):7.1f} median "
            f"[{min(per_step):.1f} .. {max(per_step):.1f}], {timed_tokens / seconds:,.0f} tokens/s"
        )
    print(
        f"deepspeed / torch: {ds_s / torch_s:.3f} over the timed steps; paired per-step ratio median {median:.3f} "
        f"(quartiles {low:.3f} .. {high:.3f})"
    )
    print(
        f"loss per step: torch {torch_record.losses[0]:.4f} -> {torch_record.losses[-1]:.4f}, deepspeed "
        f"{ds_record.losses[0]:.4f} -> {ds_record.losses[-1]:.4f}; max |diff| {max(loss_diffs):.2e} over "
        f"{len(loss_diffs)} steps (first step {loss_diffs[0]:.2e})"
    )
    if median and (high - low) / median > _NOISY_SPREAD:
        print(f"note: paired ratios spread {100 * (high - low) / median:.0f}% of their median; timings look noisy")

    summary = {
        "zero_stage": args.zero_stage,
        "steps": args.steps,
        "torch_step_ms": round(torch_s / args.steps * 1e3, 2),
        "deepspeed_step_ms": round(ds_s / args.steps * 1e3, 2),
        "ratio_vs_torch": round(ds_s / torch_s, 4),
        "torch_tokens_per_s": round(timed_tokens / torch_s),
        "deepspeed_tokens_per_s": round(timed_tokens / ds_s),
        "max_abs_loss_diff": max(loss_diffs),
        "peak_rss_mb": round(max_rss_mb(), 1),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
