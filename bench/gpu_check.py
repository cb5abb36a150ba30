"""GPU check: tokens/s, MFU and peak memory of the real training path on one GPU node, as one JSON line.

Trains the tiny built-in LLaMA and a ≥1B-parameter LLaMA config (random init, saved once in bf16 as a Hugging Face
folder that every worker loads with `from_pretrained`) under ZeRO-2 and ZeRO-3, with 1 and 2 workers where the node
has the GPUs, through `TorchTrainer(train_loop_per_worker)` on a local Ray: the path a trial takes, NCCL included.
tokens/s, MFU and rank 0's peak memory are the loop's own figures, read back from each case's MLflow run, plus
tokens/s and MFU without the first step (CUDA and allocator warm-up). One more case trains the ≥1B model with
Study B's in-loop evaluation (test loss and greedy replies scored by ROUGE, exact match and a tiny reward model
every 10 steps): the share of its loop spent evaluating, on the GPU. A case that fails
(out of memory, say) is recorded with its error and the others still run. Sized for < 8 minutes on one H200,
Ray start and model save included; `--budget-s` skips the cases that would start after it. The 1B model uses the
built-in byte tokenizer with its embeddings padded to LLaMA-2's 32,000 rows, so its size and LM head are real.
The last stdout line is one JSON object; progress goes to stderr. Run from the repository root:

    python -m bench.gpu_check                          # one GPU node, bf16
    python -m bench.gpu_check --out gpu_check.json     # also written to a file
    python -m bench.gpu_check --dry-run                # the same code on CPU: gloo, a 9M-parameter LLaMA, 4 fits
                                                       # covering every pair of settings, ~2 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import string
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from dynamics.config import (
    BuiltinModelConfig,
    EvaluateConfig,
    ModelConfig,
    RewardModelConfig,
    ScalingConfig,
    TrainConfig,
)
from dynamics.models import ModelSource, build_builtin_model, builtin_tokenizer, load_tokenizer, materialise
from dynamics.models.reward import materialise_reward_model
from dynamics.text.templates import TEMPLATES
from dynamics.tracking import TrackedRun, start_sweep_run
from dynamics.train.loop import WorkerInputs, encode_split, train_loop_per_worker
from dynamics.train.trial import worker_resources

# A local, offline Ray of our own, for the driver and (through the runtime_env) every worker.
_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",  # a finished fit is noticed in 0.5 s instead of 2 s
    "USE_HUB_KERNELS": "0",  # as a sweep's workers run: no kernels fetched from the hub (dynamics.sweep.runtime)
}


# Study B's in-loop metrics, every 10 steps as its configs run them, scored by a tiny reward model.
_EVAL_METRICS = ["rouge1", "rouge_l", "exact_match", "reward"]
_EVAL_EVERY = 10
_TINY_REWARD = BuiltinModelConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4)


@dataclass(frozen=True)
class Evaluation:
    """In-loop evaluation for a case: test rows generated for and how long a reply may be."""

    test_rows: int
    max_new_tokens: int
    batch_size: int
    steps: int  # the case trains this many steps instead of the model's


@dataclass(frozen=True)
class ModelCase:
    """One model of the check and the batch geometry it trains with."""

    name: str
    sizes: BuiltinModelConfig
    vocab_size: int | None  # None: the tokenizer's, saved by `materialise` (the built-in path)
    max_length: int  # tokens per example; every synthetic example fills it
    micro_batch_size: int
    global_batch_size: int
    steps: int


def _gpu_models() -> list[ModelCase]:
    tiny = BuiltinModelConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=4)
    # TinyLlama-like widths with full multi-head attention: 1.06B parameters at a 32k vocabulary.
    big = BuiltinModelConfig(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=18,
        num_attention_heads=16,
        max_position_embeddings=2048,
    )
    return [ModelCase("tiny-2m", tiny, None, 512, 16, 32, 20), ModelCase("llama-1b", big, 32_000, 2048, 8, 16, 10)]


def _dry_run_models() -> list[ModelCase]:
    tiny = BuiltinModelConfig(
        hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128
    )
    small = BuiltinModelConfig(
        hidden_size=128, intermediate_size=344, num_hidden_layers=4, num_attention_heads=4, max_position_embeddings=128
    )
    return [ModelCase("tiny", tiny, None, 64, 2, 4, 3), ModelCase("llama-small", small, 32_000, 64, 2, 4, 3)]


def llama_parameters(sizes: BuiltinModelConfig, vocab_size: int) -> int:
    """Parameters of `build_builtin_model`'s LLaMA from its config: untied embeddings and head, no biases."""
    hidden, inner = sizes.hidden_size, sizes.intermediate_size
    block = 4 * hidden * hidden + 3 * hidden * inner + 2 * hidden  # q, k, v, o; gate, up, down; two RMSNorms
    return 2 * vocab_size * hidden + sizes.num_hidden_layers * block + hidden


def save_random_llama(case: ModelCase, folder: Path) -> ModelSource:
    """A random-init LLaMA saved once in bf16 with the byte tokenizer, loaded by workers as a real model is."""
    assert case.vocab_size is not None
    tokenizer = builtin_tokenizer()
    if case.vocab_size < len(tokenizer):
        raise ValueError(f"{case.name}: vocab_size {case.vocab_size} is below the tokenizer's {len(tokenizer)}")
    model = build_builtin_model(case.sizes, vocab_size=case.vocab_size).to(torch.bfloat16)
    expected = llama_parameters(case.sizes, case.vocab_size)
    if model.num_parameters() != expected:
        raise AssertionError(f"{case.name}: built {model.num_parameters():,} parameters, config says {expected:,}")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return ModelSource(str(folder), str(folder), expected)


def synthetic_tables(rows: int, max_length: int, seed: int, test_rows: int = 2) -> tuple[pa.Table, pa.Table]:
    """Training rows (id, messages) whose prompts overfill `max_length` byte tokens, so each example is cut to
    exactly that length (equal tokens per step), and a test table (id, task, category, messages) over 4 tasks."""
    rng = random.Random(seed)

    def text(chars: int) -> str:
        words, length = [], 0
        while length < chars:
            words.append("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8))))
            length += len(words[-1]) + 1
        return " ".join(words)

    conversations = [
        [{"role": "user", "content": text(max_length + 32)}, {"role": "assistant", "content": text(max_length // 4)}]
        for _ in range(rows + test_rows)
    ]
    arranged = pa.table({"id": [f"r{n}" for n in range(rows)], "messages": conversations[:rows]})
    tasks = [f"synthetic-{n % 4}" for n in range(test_rows)]
    test = pa.table(
        {
            "id": [f"t{n}" for n in range(test_rows)],
            "task": tasks,
            "category": ["synthetic"] * test_rows,
            "messages": conversations[rows:],
        }
    )
    return arranged, test


def error_text(error: BaseException, limit: int = 2000) -> str:
    """The error in at most `limit` characters: its head (what failed) and its tail (a worker's traceback ends
    with the root cause, e.g. torch.OutOfMemoryError)."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else f"{text[: limit // 4]} … {text[-(limit * 3 // 4) :]}"


def _history(run: TrackedRun, key: str) -> list[float]:
    return [m.value for m in sorted(run.client.get_metric_history(run.run_id, key), key=lambda m: m.step)]


def steady_rate(cumulative_rates: list[float]) -> float | None:
    """tokens/s over steps 2…n from the loop's cumulative tokens/s after each step, for equal tokens per step:
    step k ends after k·t tokens in k·t/r_k seconds, so the rate after step 1 is (n-1)/(n/r_n - 1/r_1)."""
    n = len(cumulative_rates)
    if n < 2:
        return None
    return (n - 1) / (n / cumulative_rates[-1] - 1 / cumulative_rates[0])


def _check_fills(arranged: pa.Table, source: ModelSource, train: TrainConfig, name: str) -> None:
    """Every training example is exactly `max_length` tokens, as `steady_rate` and tokens_per_step assume."""
    template = TEMPLATES.get(train.template)
    split = encode_split(arranged, load_tokenizer(source.tokenizer, train.template), template, train)
    lengths = {len(example.input_ids) for example in split.examples}
    if len(split.examples) != arranged.num_rows or lengths != {train.max_length}:
        raise AssertionError(f"{name}: synthetic examples are {sorted(lengths)} tokens long, not {train.max_length}")


def run_case(
    model: ModelCase,
    source: ModelSource,
    zero_stage: int,
    workers: int,
    use_gpu: bool,
    folder: Path,
    evaluation: Evaluation | None = None,
) -> dict[str, Any]:
    """One `TorchTrainer` fit of `model` (with Study B's in-loop evaluation if given); its figures, or its error."""
    from ray.train import RunConfig
    from ray.train import ScalingConfig as RayScalingConfig
    from ray.train.torch import TorchTrainer

    name = case_name(model, zero_stage, workers, evaluation)
    steps = model.steps if evaluation is None else evaluation.steps
    train = TrainConfig(
        global_batch_size=model.global_batch_size,
        micro_batch_size=model.micro_batch_size,
        max_length=model.max_length,
        zero_stage=zero_stage,
        precision="bf16",
        lr=1e-3,
        schedule="constant",
        # Without evaluation: at step 0 and at the end only; the meter leaves it out anyway.
        eval_every=10**6 if evaluation is None else _EVAL_EVERY,
        eval_batch_size=model.micro_batch_size,
    )
    test_rows = 2 if evaluation is None else evaluation.test_rows
    arranged, test = synthetic_tables(steps * model.global_batch_size, model.max_length, zero_stage, test_rows)
    _check_fills(arranged, source, train, name)
    record: dict[str, Any] = {
        "case": name,
        "model": model.name,
        "params": source.num_parameters,
        "zero_stage": zero_stage,
        "workers": workers,
        "precision": train.precision,
        "seq_len": model.max_length,
        "global_batch": model.global_batch_size,
        "micro_batch": model.micro_batch_size,
        "steps": steps,
        "tokens_per_step": model.global_batch_size * model.max_length,
    }
    evaluate, reward_source = None, None
    if evaluation is not None:
        reward = RewardModelConfig(builtin=_TINY_REWARD, batch_size=evaluation.batch_size)
        evaluate = EvaluateConfig(
            in_loop=[{"metrics": _EVAL_METRICS, "every": _EVAL_EVERY}],
            max_new_tokens=evaluation.max_new_tokens,
            batch_size=evaluation.batch_size,
            reward_model=reward,
        )
        reward_source = materialise_reward_model(reward, folder)
        record |= {"test_rows": test_rows, "max_new_tokens": evaluation.max_new_tokens, "eval_every": _EVAL_EVERY}
    scaling = ScalingConfig(num_workers=workers, use_gpu=use_gpu, cpus_per_worker=1.0 if use_gpu else 0.5)
    run = start_sweep_run(f"sqlite:///{folder / 'mlflow.db'}", "gpu-check", name, params=record)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "inputs": WorkerInputs(
                source, train, arranged, test, run, time.time(), seed=0, evaluate=evaluate, reward_model=reward_source
            )
        },
        scaling_config=RayScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker=worker_resources(scaling)
        ),
        run_config=RunConfig(name=name.replace("/", "-"), storage_path=str(folder / "ray")),
    )
    started = time.perf_counter()
    try:
        trainer.fit()
    except Exception as error:  # a failed case (OOM, NCCL) is a result too; the next case still runs
        run.fail(error)
        return record | {"wall_s": round(time.perf_counter() - started, 1), "error": error_text(error)}
    run.finish()
    rates, mfus, losses = _history(run, "tokens_per_s"), _history(run, "mfu"), _history(run, "train_loss")
    steady = steady_rate(rates)
    peak = _history(run, "peak_memory_allocated_gib")
    reserved = _history(run, "peak_memory_reserved_gib")
    train_s = steps * record["tokens_per_step"] / rates[-1] if rates else None
    if evaluation is not None:
        record |= _eval_figures(run, train_s)
    return record | {
        "tokens_per_s": round(rates[-1], 1) if rates else None,
        "mfu": round(mfus[-1], 4) if mfus else None,
        "steady_tokens_per_s": round(steady, 1) if steady else None,
        "steady_mfu": round(mfus[-1] * steady / rates[-1], 4) if mfus and steady else None,
        "peak_memory_gib": round(peak[-1], 2) if peak else None,
        "peak_reserved_gib": round(reserved[-1], 2) if reserved else None,
        "train_loss_first": round(losses[0], 4) if losses else None,
        "train_loss_last": round(losses[-1], 4) if losses else None,
        "startup_s": round(_history(run, "startup_s")[-1], 1),  # fit() called → ready for step 0
        "worker_setup_s": round(_history(run, "worker_setup_s")[-1], 1),  # of which in train_worker
        "train_s": round(train_s, 2) if train_s else None,
        "wall_s": round(time.perf_counter() - started, 1),
        "error": None,
    }


def _eval_figures(run: TrackedRun, train_s: float | None) -> dict[str, Any]:
    """Time the loop spent evaluating (test loss, generation and scoring), from the run's logged eval_s/*, and
    its share of the loop's time (evaluation + training steps)."""
    loss_s, generation_s = _history(run, "eval_s/loss"), _history(run, "eval_s/generation")
    evaluating_s = sum(loss_s) + sum(generation_s)
    share = evaluating_s / (evaluating_s + train_s) if train_s else None
    rouge = _history(run, "test_rouge_l/macro")
    return {
        "evaluations": len(generation_s),
        "eval_loss_s": round(sum(loss_s), 2),
        "eval_generation_s": round(sum(generation_s), 2),
        "eval_share": round(share, 4) if share is not None else None,
        "rouge_l_last": round(rouge[-1], 3) if rouge else None,
    }


def case_name(model: ModelCase, zero_stage: int, workers: int, evaluation: Evaluation | None) -> str:
    return f"{model.name}/zero{zero_stage}/{workers}w" + ("" if evaluation is None else "+eval")


def case_grid(models: list[ModelCase], dry_run: bool) -> list[tuple[ModelCase, int, int, Evaluation | None]]:
    """(model, ZeRO stage, workers, evaluation): on GPU every combination, one-worker cases first so a short
    budget keeps them, then the large model with evaluation; on CPU a set that still meets every pair of values
    once (each model with each stage and each worker count, each stage with each worker count), as every fit
    costs ~20 s of worker start-up there, the last one evaluating as the GPU case does."""
    if not dry_run:
        grid = [(model, stage, workers, None) for workers in (1, 2) for model in models for stage in (2, 3)]
        return grid[:4] + [(models[-1], 3, 1, Evaluation(40, 128, 20, 2 * _EVAL_EVERY))] + grid[4:]
    grid = [(model, stage, 1 + (index + stage) % 2, None) for index, model in enumerate(models) for stage in (2, 3)]
    return grid[:-1] + [(*grid[-1][:3], Evaluation(8, 8, 4, 3))]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _sources(models: list[ModelCase], folder: Path) -> dict[str, ModelSource]:
    """Each model saved once: the tiny one by the built-in path, the large one in bf16 with a padded vocabulary."""
    sources = {}
    for model in models:
        if model.vocab_size is None:
            sources[model.name] = materialise(model.name, ModelConfig(builtin=model.sizes), folder)
        else:
            sources[model.name] = save_random_llama(model, folder / model.name)
        _log(f"{model.name}: {sources[model.name].num_parameters:,} parameters ({model.sizes.model_dump()})")
    return sources


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU workers (gloo), tiny sizes, 3 steps a case")
    parser.add_argument("--out", type=Path, help="also write the JSON object to this file")
    parser.add_argument(
        "--budget-s", type=float, help="start no case after this many seconds (default 390 on GPU, none on CPU)"
    )
    parser.add_argument("--cases", help="comma-separated case names to run (default: all), e.g. llama-1b/zero2/1w")
    args = parser.parse_args(argv)
    wanted = None if args.cases is None else set(args.cases.split(","))
    budget_s = args.budget_s or (math.inf if args.dry_run else 390.0)
    began = time.perf_counter()
    use_gpu = not args.dry_run
    if use_gpu and not torch.cuda.is_available():
        parser.error("no CUDA device is visible; --dry-run runs the same check on CPU")
    for key, value in _ENV.items():
        os.environ.setdefault(key, value)
    # Read by DeepSpeed at import in every worker: a shell's DS_ACCELERATOR=cpu would put GPU workers on the CPU.
    os.environ["DS_ACCELERATOR"] = "cuda" if use_gpu else "cpu"
    worker_env = {key: os.environ[key] for key in (*_ENV, "DS_ACCELERATOR")}
    import ray

    gpus = torch.cuda.device_count() if use_gpu else 0
    device = f"{torch.cuda.get_device_name(0)} x{gpus}" if use_gpu else "cpu (dry run)"
    models = _gpu_models() if use_gpu else _dry_run_models()
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    _log(f"gpu_check on {device}; work folder {folder}")
    saved = time.perf_counter()
    sources = _sources(models, folder / "models")
    model_save_s = time.perf_counter() - saved

    started = time.perf_counter()
    ray.init(
        address="local",  # a Ray of our own, never a cluster found running on the machine
        num_cpus=os.cpu_count() if use_gpu else 2,
        num_gpus=gpus,
        include_dashboard=False,
        log_to_driver=False,  # stdout stays ours: its last line is the JSON object
        runtime_env={"env_vars": worker_env},
        _node_ip_address="127.0.0.1",
    )
    ray_start_s = time.perf_counter() - started
    cases: list[dict[str, Any]] = []
    skipped: list[str] = []
    for model, stage, workers, evaluation in case_grid(models, dry_run=args.dry_run):
        name = case_name(model, stage, workers, evaluation)
        if wanted is not None and name not in wanted:
            skipped.append(f"{name}: not in --cases")
        elif use_gpu and workers > gpus:
            skipped.append(f"{name}: needs {workers} GPUs, {gpus} visible")
        elif time.perf_counter() - began > budget_s:
            skipped.append(f"{name}: past the {budget_s:.0f} s budget")
        else:
            _log(f"{name}: starting at {time.perf_counter() - began:.0f} s")
            try:
                cases.append(run_case(model, sources[model.name], stage, workers, use_gpu, folder, evaluation))
            except Exception as error:  # outside the fit (MLflow, say): still one case's failure, not the check's
                cases.append({"case": name, "error": error_text(error)})
            _log(f"{name}: {json.dumps(cases[-1])}")
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)  # the 1B model is 2 GB
    summary = {
        "device": device,
        "gpus": gpus,
        "tokenizer": f"built-in byte tokenizer ({len(builtin_tokenizer())} ids); large model's vocab padded",
        "model_save_s": round(model_save_s, 1),
        "ray_start_s": round(ray_start_s, 1),
        "cases": cases,
        "skipped": skipped,
        "wall_s": round(time.perf_counter() - began, 1),
    }
    line = json.dumps(summary)
    if args.out is not None:
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line, flush=True)
    return summary


if __name__ == "__main__":
    main()
