"""Benchmark: sentences/s of the Ray Data embedding pool (`dynamics.arrange.embed.embed_texts`) against one
process calling `SentenceTransformer.encode` on the same texts, with the same model and the same cores.

    python -m bench.embed                                       # 20,000 texts, the config's pool: 2 actors x 0.5 CPU
    python -m bench.embed --num-actors 2 --cpus-per-actor 1     # two actors, one torch thread and one CPU each
    python -m bench.embed --num-actors 1 --cpus-per-actor 2     # one actor with two torch threads
    python -m bench.embed --texts 4000                          # quicker

Each side runs in its own spawned process. The single process loads the model once and encodes half the
texts before the pool runs and half after it, so a background load that comes or goes weighs on both sides;
the figures of other processes' CPU use during each phase are printed, and a run with much of it is not a
fair comparison (two torch threads in one process slow down far more under it than two 1-thread actors).
The single process uses as many torch threads as this process may use cores; each pool actor uses
max(1, int(cpus_per_actor)), as `embed_texts` sets it.

Steady state excludes one-time start-up: the single process is timed after loading the model and encoding a
small warm-up set. The pool's actors start and load the model inside every `embed_texts` call, so it is
called three times on a fresh local Ray: the warm-up set (absorbs what happens once per driver), the warm-up
set again, then all texts; the steady rate is the extra texts over the extra time of the last two calls, and
the per-call start-up (actor start, model load, scheduling) is what the second call took beyond that rate.
End-to-end compares a fresh process's model load + `encode` with a first `embed_texts` call on a running
Ray (as in a sweep), and also with Ray's start added. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from typing import Any

import numpy as np

from bench.fresh import cpu_s, in_fresh_process, max_rss_mb, receive, reporting_errors, spawn
from dynamics.arrange.embed import BUILTIN_EMBEDDER, embed_texts, example_texts, resolve_model_path
from dynamics.config import ArrangeConfig
from dynamics.data.builtin import generate_builtin

_DEFAULTS = ArrangeConfig()
_SAMPLE_S = 0.2  # RSS/CPU sampling period of the pool's process tree


def make_texts(count: int) -> list[str]:
    """`count` deterministic English texts: built-in examples (all turns), every other pass two of them joined.

    12 to 75 MiniLM tokens, mean ~29; of 20,000 texts ~10,800 are distinct (repeats cost the same to embed).
    """
    base = example_texts(generate_builtin(per_train_task=40, per_test_task=8, seed=0), "all_turns")
    texts = []
    for index in range(count):
        cycle, row = divmod(index, len(base))
        pieces = [base[(row + 97 * extra * (cycle + 1)) % len(base)] for extra in range(cycle % 2 + 1)]
        texts.append(" ".join(pieces))
    return texts


def warmup_subset(texts: list[str], size: int) -> list[str]:
    """Evenly spaced texts, so the warm-up set has the length mix of the whole set."""
    step = max(1, len(texts) // size)
    return texts[::step][:size]


def padded_tokens(token_lengths: np.ndarray, order: np.ndarray, batch_size: int) -> int:
    """Tokens the model processes when rows go in `order`, `batch_size` at a time, each padded to its longest."""
    batches = np.array_split(token_lengths[order], range(batch_size, len(order), batch_size))
    return int(sum(batch.max() * len(batch) for batch in batches))


def _machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (plus time the hypervisor took), for background load."""
    import psutil

    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def _builtin_study():
    """A study of built-in parts only: the environment `prepare_environment` gives it is the offline default's."""
    from dynamics.config import BuiltinModelConfig, ModelConfig, SweepConfig

    return SweepConfig(models={"tiny": ModelConfig(builtin=BuiltinModelConfig())}, grid={"model": ["tiny"]})


def single_process_server(connection: Any, batch_size: int, threads: int) -> None:
    """Loads the model once, then answers ("encode", texts) and ("padding", texts) requests until it gets None."""
    with reporting_errors(connection):
        from dynamics.sweep.runtime import prepare_environment

        prepare_environment(_builtin_study())  # the same offline and tokenizer settings the pool's workers get
        started = time.perf_counter()
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        model = SentenceTransformer(resolve_model_path(BUILTIN_EMBEDDER), device="cpu")
        connection.send(("ok", {"load_s": time.perf_counter() - started, "threads": torch.get_num_threads()}))
        while (request := connection.recv()) is not None:
            command, texts = request
            if command == "encode":
                cpu_before, started = cpu_s(), time.perf_counter()
                vectors = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
                seconds = time.perf_counter() - started
                reply = {"vectors": vectors.astype(np.float32), "seconds": seconds, "cpu_s": cpu_s() - cpu_before}
            else:
                # `encode` sorts texts by length (characters, longest first) before batching; the pool's batches
                # are contiguous rows, which `embed_texts` keeps so that results are reproducible.
                encoded = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
                lengths = np.array([len(ids) for ids in encoded])  # (N,) tokens per text
                by_length = np.argsort([-len(text) for text in texts], kind="stable")
                reply = {
                    "tokens": int(lengths.sum()),
                    "padded_length_sorted": padded_tokens(lengths, by_length, batch_size),
                    "padded_contiguous": padded_tokens(lengths, np.arange(len(texts)), batch_size),
                    "peak_rss_mb": max_rss_mb(),
                }
            connection.send(("ok", reply))


class SingleProcess:
    """The baseline: one spawned process holding one model, encoding whatever it is sent."""

    def __init__(self, batch_size: int, threads: int, timeout_s: float) -> None:
        self._connection, self._process = spawn(single_process_server, batch_size, threads, duplex=True)
        self._timeout_s = timeout_s
        self.started = receive(self._connection, self._process, timeout_s, "single process: model load")

    def ask(self, command: str, texts: list[str]) -> dict[str, Any]:
        machine_before = _machine_busy_s()
        self._connection.send((command, texts))
        reply = receive(self._connection, self._process, self._timeout_s, f"single process: {command}")
        reply["machine_busy_s"] = _machine_busy_s() - machine_before
        return reply

    def close(self) -> None:
        if self._process.is_alive():  # not after a failure that killed it, so the first error is the one shown
            self._connection.send(None)
        self._process.join()


class TreeSampler(threading.Thread):
    """Samples the RSS and CPU time of this process and all its descendants (Ray's daemons and actors)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self._root = psutil.Process()
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._cpu: dict[int, float] = {}  # pid → last seen user+system CPU seconds
        self._actors: set[int] = set()
        self.peak_rss_mb = 0.0
        self.peak_actor_rss_mb = 0.0

    def run(self) -> None:
        while not self._stop_event.wait(_SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        import psutil

        total_rss = actor_rss = 0
        for process in [self._root, *self._root.children(recursive=True)]:
            try:
                with process.oneshot():
                    rss, times = process.memory_info().rss, process.cpu_times()
                    # A pooled worker becomes an actor after it starts, and its title changes then.
                    if process.pid not in self._actors and "MapWorker" in " ".join(process.cmdline()):
                        self._actors.add(process.pid)
            except psutil.Error:
                continue  # gone between listing and reading
            total_rss += rss
            actor_rss += rss if process.pid in self._actors else 0
            with self._lock:
                self._cpu[process.pid] = times.user + times.system
        self.peak_rss_mb = max(self.peak_rss_mb, total_rss / 2**20)
        self.peak_actor_rss_mb = max(self.peak_actor_rss_mb, actor_rss / 2**20)

    def cpu_s(self) -> tuple[float, float]:
        """(all processes, actors only) CPU seconds so far; a process's last sampling period is lost at exit."""
        self.sample()
        with self._lock:
            actors = sum(cpu for pid, cpu in self._cpu.items() if pid in self._actors)
            return sum(self._cpu.values()), actors

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def measure_pool(texts: list[str], warmup: list[str], config: ArrangeConfig) -> dict[str, Any]:
    """A fresh local Ray (as the sweep starts it), then `embed_texts` on the warm-up set twice and on all texts."""
    from dynamics.sweep.runtime import prepare_environment, start_ray

    worker_env = prepare_environment(_builtin_study())  # sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray starts
    sampler = TreeSampler()
    sampler.start()
    started = time.perf_counter()
    start_ray(worker_env)
    ray_init_s = time.perf_counter() - started

    import ray
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False

    def timed(batch: list[str]) -> dict[str, Any]:
        (cpu_before, actor_cpu_before), machine_before = sampler.cpu_s(), _machine_busy_s()
        started = time.perf_counter()
        vectors = embed_texts(batch, config)
        seconds = time.perf_counter() - started
        (cpu_after, actor_cpu_after), machine_after = sampler.cpu_s(), _machine_busy_s()
        return {
            "vectors": vectors,  # (n, d) float32
            "seconds": seconds,
            "cpu_s": cpu_after - cpu_before,  # this process, Ray's daemons and the actors
            "actor_cpu_s": actor_cpu_after - actor_cpu_before,
            "machine_busy_s": machine_after - machine_before,
        }

    first, small, full = timed(warmup), timed(warmup), timed(texts)
    ray_cpus = ray.cluster_resources().get("CPU", 0.0)
    ray.shutdown()
    sampler.stop()
    return {
        "ray_cpus": ray_cpus,
        "ray_init_s": ray_init_s,
        "first": first,
        "small": small,
        "full": full,
        "peak_rss_mb": sampler.peak_rss_mb,
        "peak_actor_rss_mb": sampler.peak_actor_rss_mb,
    }


def _background(phase: dict[str, Any]) -> float:
    """Cores that processes other than the measured ones kept busy during a timed phase."""
    return (phase["machine_busy_s"] - phase["cpu_s"]) / phase["seconds"]


def _rate(count: int, seconds: float) -> float:
    return count / max(seconds, 1e-9)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000, help="texts to embed")
    parser.add_argument("--num-actors", type=int, default=_DEFAULTS.num_actors, help="embedding actors in the pool")
    parser.add_argument("--cpus-per-actor", type=float, default=_DEFAULTS.cpus_per_actor, help="CPUs per actor")
    parser.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, help="texts per batch, both sides")
    args = parser.parse_args(argv)
    config = ArrangeConfig(num_actors=args.num_actors, cpus_per_actor=args.cpus_per_actor, batch_size=args.batch_size)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    actor_threads = max(1, int(config.cpus_per_actor))  # as embed_texts sets torch threads per actor

    texts = make_texts(args.texts)
    warmup = warmup_subset(texts, min(len(texts) // 4, 4 * config.num_actors * config.batch_size))
    halves = texts[: len(texts) // 2], texts[len(texts) // 2 :]
    timeout_s = 120 + len(texts) / 30  # slower than 30 texts/s is taken to be a hang
    print(
        f"{len(texts):,} texts (warm-up {len(warmup)}), batch {config.batch_size}, {cores} cores; "
        f"single process: {cores} torch threads; pool: {config.num_actors} actors x {config.cpus_per_actor} CPU, "
        f"{actor_threads} torch thread(s) each; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    # The single process encodes one half before the pool runs and the other half after it, so a background
    # load that comes or goes during the run weighs on both sides alike.
    single = SingleProcess(config.batch_size, threads=cores, timeout_s=timeout_s)
    try:
        single_warmup = single.ask("encode", warmup)
        before = single.ask("encode", halves[0])
        pool = in_fresh_process(measure_pool, timeout_s=timeout_s, texts=texts, warmup=warmup, config=config)
        after = single.ask("encode", halves[1])
        padding = single.ask("padding", texts)
    finally:
        single.close()

    single_s = before["seconds"] + after["seconds"]
    single_rate = _rate(len(texts), single_s)  # sentences/s, model loaded and warm
    single_cpu_s = before["cpu_s"] + after["cpu_s"]
    single_background = (before["machine_busy_s"] + after["machine_busy_s"] - single_cpu_s) / single_s
    single_once_s = single_warmup["seconds"] - len(warmup) / single_rate  # the first encode's extra time
    single_e2e_s = single.started["load_s"] + single_once_s + single_s  # a fresh process: load, then encode all
    print(
        f"single process: load {single.started['load_s']:.1f} s, warm-up {single_warmup['seconds']:.1f} s, "
        f"encode {before['seconds']:.1f} + {after['seconds']:.1f} s = {single_rate:,.0f} sentences/s "
        f"({_rate(len(halves[0]), before['seconds']):,.0f} before the pool with other processes using "
        f"{_background(before):.2f} cores, {_rate(len(halves[1]), after['seconds']):,.0f} after with "
        f"{_background(after):.2f}); {single_cpu_s / single_s:.2f} cores busy; "
        f"peak RSS {padding['peak_rss_mb']:,.0f} MB",
        flush=True,
    )

    first, small, full = pool["first"], pool["small"], pool["full"]
    pool_rate = _rate(len(texts) - len(warmup), full["seconds"] - small["seconds"])  # sentences/s, start-up excluded
    startup_s = small["seconds"] - len(warmup) / pool_rate  # per call: actor start, model load, scheduling
    once_s = first["seconds"] - small["seconds"]  # per driver: Ray Data imports, first worker processes
    pool_e2e_s = once_s + full["seconds"]  # the first call in a driver whose Ray is already up, as in a sweep
    pool_background = _background(full)
    print(
        f"pool ({pool['ray_cpus']:.0f} Ray CPUs): ray start {pool['ray_init_s']:.1f} s; embed_texts "
        f"{first['seconds']:.1f} s and {small['seconds']:.1f} s for {len(warmup)} texts, {full['seconds']:.1f} s for "
        f"{len(texts):,} -> {pool_rate:,.0f} sentences/s steady, {startup_s:.1f} s start-up per call, "
        f"{once_s:.1f} s more on the first call; in the full call the actors kept "
        f"{full['actor_cpu_s'] / full['seconds']:.2f} cores busy, "
        f"all Ray processes {full['cpu_s'] / full['seconds']:.2f}, "
        f"other processes {pool_background:.2f}; peak RSS {pool['peak_rss_mb']:,.0f} MB "
        f"(actors {pool['peak_actor_rss_mb']:,.0f} MB)",
        flush=True,
    )

    single_vectors = np.concatenate([before["vectors"], after["vectors"]])  # (N, d) float32
    diff = float(np.max(np.abs(full["vectors"].astype(np.float64) - single_vectors.astype(np.float64))))
    print(
        f"padding: {padding['tokens']:,} tokens ({padding['tokens'] / len(texts):.1f} per text) become "
        f"{padding['padded_length_sorted']:,} in encode's length-sorted batches and "
        f"{padding['padded_contiguous']:,} in the pool's contiguous ones; max |pool - single| {diff:.2e}"
    )
    summary = {
        "texts": len(texts),
        "batch_size": config.batch_size,
        "cores": cores,
        "num_actors": config.num_actors,
        "cpus_per_actor": config.cpus_per_actor,
        "pool_threads_per_actor": actor_threads,
        "single_process_threads": single.started["threads"],
        "pool_sentences_per_s": round(pool_rate, 1),
        "single_process_sentences_per_s": round(single_rate, 1),
        "ratio_vs_single_process": round(pool_rate / single_rate, 3),
        "pool_startup_s": round(startup_s, 2),
        "pool_first_call_extra_s": round(once_s, 2),
        "ray_init_s": round(pool["ray_init_s"], 2),
        "single_process_model_load_s": round(single.started["load_s"], 2),
        "single_process_first_encode_extra_s": round(single_once_s, 2),
        "pool_end_to_end_s": round(pool_e2e_s, 2),
        "single_process_end_to_end_s": round(single_e2e_s, 2),
        "end_to_end_ratio": round(single_e2e_s / pool_e2e_s, 3),
        "end_to_end_ratio_with_ray_start": round(single_e2e_s / (pool["ray_init_s"] + pool_e2e_s), 3),
        "pool_actor_cores_busy": round(full["actor_cpu_s"] / full["seconds"], 2),
        "single_process_cores_busy": round(single_cpu_s / single_s, 2),
        "background_cores_busy_during_pool": round(pool_background, 2),
        "background_cores_busy_during_single_process": round(single_background, 2),
        "background_cores_busy_single_process_before_pool": round(_background(before), 2),
        "background_cores_busy_single_process_after_pool": round(_background(after), 2),
        "single_process_sentences_per_s_before_pool": round(_rate(len(halves[0]), before["seconds"]), 1),
        "single_process_sentences_per_s_after_pool": round(_rate(len(halves[1]), after["seconds"]), 1),
        "padding_overhead_single_process": round(padding["padded_length_sorted"] / padding["tokens"], 3),
        "padding_overhead_pool": round(padding["padded_contiguous"] / padding["tokens"], 3),
        "max_abs_diff": diff,
        "single_process_peak_rss_mb": round(padding["peak_rss_mb"], 1),
        "pool_peak_rss_mb": round(pool["peak_rss_mb"], 1),
        "pool_actors_peak_rss_mb": round(pool["peak_actor_rss_mb"], 1),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
