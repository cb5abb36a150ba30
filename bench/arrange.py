"""Benchmark: TMA (`dynamics.arrange.tma`) and WSD scores against a bare chunked pass and the dense method.

Parts, each method in its own spawned process so peak RSS (ru_maxrss) is per method (part (a): the fastest of
`--repeats` runs, so other load on the machine does not decide a ratio); "growth" is the
peak beyond the process's RSS right after its inputs were generated:

- (a) N=1M, M=1k, d=384: a bare chunked ``X @ T.T`` max pass; `scored_tma` (WSD + TMA nearest, 30 rounds,
  scores read off TMA's first pass) — the headline figure, target ≤ 2.0× the bare pass and growth ≤ 1 GB;
  and, for reference, `score` and `tma` run separately.
- (b) N=200k, M=1k: `tma` against the dense method of the original study code (build the N×M matrix
  once, rescan all of it every round, 30 rounds), in a test-major (M, N) layout with contiguous scans
  and in the literal (N, M) layout with strided column scans; target ≥ 10× faster.
- (c) N=1M, M=10k: `tma` for 30 rounds completes; time and peak RSS.
- (d) N=20k, M=1k, until the pool is empty (TMA with no K, the default for a whole volume): `tma` against
  the test-major dense method. Here rounds·M exceeds N and lists would grow to the whole pool, so `tma`
  uses its own dense engine (exact float64 fixed-point scores, taken columns dropped as they go); the
  float32 dense method is the floor it is measured against.

The last line printed is one JSON object. Run from the repository root:

    python -m bench.arrange                          # all parts (about 10 minutes on 2 cores)
    python -m bench.arrange --skip-c                 # parts (a), (b) and (d)
    python -m bench.arrange --parts d                # part (d) only
    python -m bench.arrange --n 200000 --m 500 --skip-c   # smaller part (a)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from bench.fresh import in_fresh_process, max_rss_mb
from dynamics.arrange.similarity import score
from dynamics.arrange.tma import scored_tma, tma

# As in bench/scores.py: a shared component a·sqrt(d) gives an expected pairwise cosine a²/(1+a²) = 0.2.
_SHARED_OFFSET = 0.5
_GENERATE_ROWS = 65536
_ROUNDS = 30
_CHUNK_ROWS = 8192


def make_embeddings(n: int, m: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test): (n, d) and (m, d) float32 unit rows, generated in chunks, the same for a given seed."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(d).astype(np.float32)  # (d,)
    shared *= _SHARED_OFFSET * np.sqrt(d) / np.linalg.norm(shared)
    arrays = []
    for rows in (n, m):
        vectors = np.empty((rows, d), dtype=np.float32)  # (rows, d) float32
        for start in range(0, rows, _GENERATE_ROWS):
            block = vectors[start : start + _GENERATE_ROWS]
            rng.standard_normal(block.shape, dtype=np.float32, out=block)
            block += shared
            block /= np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
        arrays.append(vectors)
    return arrays[0], arrays[1]


def bare_max_pass(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The floor: one chunked X @ T.T pass keeping each row's max, nothing else."""
    t_transposed = np.ascontiguousarray(test.T)  # (d, M) float32
    best = np.empty(train.shape[0], dtype=np.float32)  # (N,)
    for start in range(0, train.shape[0], _CHUNK_ROWS):
        np.max(train[start : start + _CHUNK_ROWS] @ t_transposed, axis=1, out=best[start : start + _CHUNK_ROWS])
    return best


def dense_tma(train: np.ndarray, test: np.ndarray, rounds: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The original method: the full N×M cosine matrix once, then every round rescans all of it.

    `rounds=None` runs until the pool is empty.
    """
    # Test-major layout, so each per-test-point argmax scans contiguous memory (the fair dense variant).
    cosines = test @ train.T  # (M, N) float32
    order, round_ids = [], []
    taken = 0
    for round_id in range(train.shape[0] if rounds is None else rounds):
        if taken == train.shape[0]:
            break
        claims = np.unique(np.argmax(cosines, axis=1))  # (≤M,) each test point's nearest remaining item
        taken += claims.size
        order.append(claims)
        round_ids.append(np.full(claims.size, round_id, dtype=np.int32))
        cosines[:, claims] = -np.inf  # taken
    return np.concatenate(order), np.concatenate(round_ids)


def dense_tma_row_major(train: np.ndarray, test: np.ndarray, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """The original method in its literal layout: an (N, M) matrix, argmax down each test column."""
    cosines = train @ test.T  # (N, M) float32
    order, round_ids = [], []
    for round_id in range(rounds):
        claims = np.unique(np.argmax(cosines, axis=0))  # (≤M,) strided scan of the whole matrix
        order.append(claims)
        round_ids.append(np.full(claims.size, round_id, dtype=np.int32))
        cosines[claims] = -np.inf  # taken
    return np.concatenate(order), np.concatenate(round_ids)


def measure(method: str, n: int, m: int, d: int, seed: int) -> dict[str, Any]:
    """Run one method in this (fresh) process: wall time, peak RSS, growth over the inputs."""
    train, test = make_embeddings(n, m, d, seed)
    ids = [f"{i:08d}" for i in range(n)]
    rss_before_mb = max_rss_mb()
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if method == "bare":
        bare_max_pass(train, test)
    elif method == "scores":
        score(train, test)
    elif method == "tma":
        result = tma(train, test, ids, max_rounds=_ROUNDS)
        extra = {"items": int(result.order.size), "rounds": int(result.rounds.max()) + 1, "order": result.order}
    elif method in ("tma_drain", "dense_drain"):
        if method == "tma_drain":
            result = tma(train, test, ids)
            order, rounds = result.order, result.rounds
        else:
            order, rounds = dense_tma(train, test, None)
        round_of_item = np.full(n, -1, dtype=np.int32)
        round_of_item[order] = rounds
        extra = {"items": int(order.size), "rounds": int(rounds.max()) + 1, "round_of_item": round_of_item}
    elif method == "wsd_tma":
        _, result = scored_tma(train, test, ids, max_rounds=_ROUNDS)
        extra = {"items": int(result.order.size), "rounds": int(result.rounds.max()) + 1, "order": result.order}
    elif method in ("dense", "dense_nm"):
        order, rounds = (dense_tma if method == "dense" else dense_tma_row_major)(train, test, _ROUNDS)
        extra = {"items": int(order.size), "rounds": int(rounds.max()) + 1, "order": order}
    else:
        raise ValueError(f"unknown method {method!r}")
    seconds = time.perf_counter() - started
    peak_mb = max_rss_mb()
    return {"seconds": seconds, "peak_rss_mb": peak_mb, "peak_rss_growth_mb": peak_mb - rss_before_mb, **extra}


def _run(label: str, method: str, repeats: int = 1, **config: Any) -> dict[str, Any]:
    """The fastest of `repeats` runs, each in a fresh process (other load on the machine only adds time)."""
    runs = [in_fresh_process(measure, method=method, **config) for _ in range(repeats)]
    result = min(runs, key=lambda run: run["seconds"])
    items = f", {result['items']:,} items in {result['rounds']} rounds" if "items" in result else ""
    times = ", ".join(f"{run['seconds']:.2f}" for run in runs)
    spread = f" (best of {repeats}: {times})" if repeats > 1 else ""
    print(
        f"({label}) {method:>7} N={config['n']:,} M={config['m']:,}: {result['seconds']:.2f} s{spread}, "
        f"peak RSS {result['peak_rss_mb']:,.0f} MB (+{result['peak_rss_growth_mb']:,.0f} MB over the inputs){items}",
        flush=True,
    )
    return result


def _part_a(args: argparse.Namespace, common: dict[str, Any]) -> dict[str, Any]:
    part_a = {"n": args.n, "m": args.m, **common}
    bare = _run("a", "bare", args.repeats, **part_a)
    fused = _run("a", "wsd_tma", args.repeats, **part_a)
    scores = _run("a", "scores", args.repeats, **part_a)
    fast = _run("a", "tma", args.repeats, **part_a)
    return {
        "n": args.n,
        "m": args.m,
        "bare_s": round(bare["seconds"], 3),
        "wsd_tma_s": round(fused["seconds"], 3),
        "wsd_tma_ratio_to_bare": round(fused["seconds"] / bare["seconds"], 3),
        "wsd_tma_growth_mb": round(fused["peak_rss_growth_mb"], 1),
        "wsd_tma_peak_rss_mb": round(fused["peak_rss_mb"], 1),
        "wsd_tma_same_order_as_tma": bool(np.array_equal(fused["order"], fast["order"])),
        "scores_s": round(scores["seconds"], 3),
        "tma_s": round(fast["seconds"], 3),
        "tma_items": fast["items"],
        "tma_ratio_to_bare": round(fast["seconds"] / bare["seconds"], 3),
        "scores_ratio_to_bare": round(scores["seconds"] / bare["seconds"], 3),
        "scores_plus_tma_ratio_to_bare": round((scores["seconds"] + fast["seconds"]) / bare["seconds"], 3),
        "bare_growth_mb": round(bare["peak_rss_growth_mb"], 1),
        "scores_growth_mb": round(scores["peak_rss_growth_mb"], 1),
        "tma_growth_mb": round(fast["peak_rss_growth_mb"], 1),
        "tma_peak_rss_mb": round(fast["peak_rss_mb"], 1),
    }


def _part_b(args: argparse.Namespace, common: dict[str, Any]) -> dict[str, Any]:
    part_b = {"n": args.n_dense, "m": args.m, **common}
    fast_b = _run("b", "tma", **part_b)
    dense_b = _run("b", "dense", **part_b)
    dense_nm = _run("b", "dense_nm", **part_b)
    same = all(np.array_equal(np.sort(fast_b["order"]), np.sort(other["order"])) for other in (dense_b, dense_nm))
    print(f"(b) TMA and both dense methods select the same item set: {same}", flush=True)
    return {
        "n": args.n_dense,
        "m": args.m,
        "tma_s": round(fast_b["seconds"], 3),
        "dense_s": round(dense_b["seconds"], 3),
        "dense_row_major_s": round(dense_nm["seconds"], 3),
        "speedup_vs_dense": round(dense_b["seconds"] / fast_b["seconds"], 2),
        "speedup_vs_dense_row_major": round(dense_nm["seconds"] / fast_b["seconds"], 2),
        "tma_growth_mb": round(fast_b["peak_rss_growth_mb"], 1),
        "dense_growth_mb": round(dense_b["peak_rss_growth_mb"], 1),
        "same_items": same,
    }


def _part_c(args: argparse.Namespace, common: dict[str, Any]) -> dict[str, Any]:
    part_c = {"n": args.n, "m": args.m_large, **common}
    large = _run("c", "tma", **part_c)
    return {
        "n": args.n,
        "m": args.m_large,
        "tma_s": round(large["seconds"], 3),
        "tma_items": large["items"],
        "tma_peak_rss_mb": round(large["peak_rss_mb"], 1),
        "tma_growth_mb": round(large["peak_rss_growth_mb"], 1),
    }


def _part_d(args: argparse.Namespace, common: dict[str, Any]) -> dict[str, Any]:
    part_d = {"n": args.n_drain, "m": args.m, **common}
    drain = _run("d", "tma_drain", **part_d)
    dense_drain = _run("d", "dense_drain", **part_d)
    return {
        "n": args.n_drain,
        "m": args.m,
        "tma_s": round(drain["seconds"], 3),
        "dense_s": round(dense_drain["seconds"], 3),
        "rounds": drain["rounds"],
        "speedup_vs_dense": round(dense_drain["seconds"] / drain["seconds"], 2),
        # Float32 near-ties may go the other way in the dense method, which ranks by float32 products.
        "share_same_round": round(float(np.mean(drain["round_of_item"] == dense_drain["round_of_item"])), 4),
        "tma_growth_mb": round(drain["peak_rss_growth_mb"], 1),
        "dense_growth_mb": round(dense_drain["peak_rss_growth_mb"], 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="training rows in parts (a) and (c)")
    parser.add_argument("--m", type=int, default=1_000, help="test rows in part (a)")
    parser.add_argument("--n-dense", type=int, default=200_000, help="training rows in part (b)")
    parser.add_argument("--m-large", type=int, default=10_000, help="test rows in part (c)")
    parser.add_argument("--d", type=int, default=384, help="embedding dimension (all-MiniLM-L6-v2: 384)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random embeddings")
    parser.add_argument("--n-drain", type=int, default=20_000, help="training rows in part (d)")
    parser.add_argument("--parts", default="abcd", help="which parts to run, e.g. 'd' or 'ab'")
    parser.add_argument("--skip-c", action="store_true", help="skip part (c), N×10k test points")
    parser.add_argument("--repeats", type=int, default=2, help="runs per method in part (a); the fastest counts")
    args = parser.parse_args(argv)
    print(f"d={args.d}, seed={args.seed}, {_ROUNDS} TMA rounds, {os.cpu_count()} CPUs", flush=True)
    common = {"d": args.d, "seed": args.seed}
    summary: dict[str, Any] = {
        "dim": args.d,
        "seed": args.seed,
        "rounds": _ROUNDS,
        "cpus": os.cpu_count(),
        "repeats_a": args.repeats,
    }

    parts = {"a": _part_a, "b": _part_b, "c": _part_c, "d": _part_d}
    for name in args.parts:
        if name not in parts:
            parser.error(f"--parts takes letters from 'abcd', got {args.parts!r}")
        if name == "c" and args.skip_c:
            continue
        summary[name] = parts[name](args, common)
    # Other work on the machine inflates every timing; the load average makes that visible.
    summary["load_average_1m_5m_15m"] = [round(value, 2) for value in os.getloadavg()]
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
