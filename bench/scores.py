"""Benchmark: chunked exact scores (`dynamics.arrange.similarity.score`) against the dense N×M method.

Both methods start from the same raw float32 embeddings, normalise them, and produce AD, MD and WSD.
The dense baseline builds the full N×M distance matrix and takes each row's mean and min. Each method
runs in its own spawned process, so the peak-RSS figures (resource.getrusage ru_maxrss) are separate.
The last line printed is one JSON object.

Run from the repository root:

    python -m bench.scores                     # laptop: N=200k, M=1k, d=384, under a minute on 2 cores
    python -m bench.scores --threads 1         # steadier timings on a busy machine
    python -m bench.scores --n 2000000 --m 10000 --repeats 1   # cluster node: dense needs 4·N·M bytes
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from typing import Any

import numpy as np

from bench.arrange import make_embeddings  # random unit vectors with pairwise cosine ~0.2
from bench.fresh import in_fresh_process, max_rss_mb
from dynamics.arrange.similarity import score


def dense_scores(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline: (AD, MD, WSD) from the full N×M distance matrix, default w_avg = mean(MD)/mean(AD)."""
    x = train / np.sqrt(np.einsum("ij,ij->i", train, train))[:, None]  # (N, d) float32, L2-normalised
    t = test / np.sqrt(np.einsum("ij,ij->i", test, test))[:, None]  # (M, d) float32, L2-normalised
    distances = x @ t.T  # (N, M) float32
    np.negative(distances, out=distances)
    ad = distances.mean(axis=1)  # (N,) float32
    md = distances.min(axis=1)  # (N,) float32
    w_avg = md.mean(dtype=np.float64) / ad.mean(dtype=np.float64)
    wsd = (md.astype(np.float64) + w_avg * ad.astype(np.float64)).astype(np.float32)
    return ad, md, wsd


def chunked_scores(
    train: np.ndarray, test: np.ndarray, chunk_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = score(train, test, chunk_rows=chunk_rows)
    return scores.ad, scores.md, scores.wsd


def measure(method: str, n: int, m: int, d: int, seed: int, repeats: int, chunk_rows: int) -> dict[str, Any]:
    """Run one method in this (fresh) process: best wall time over `repeats`, peak RSS, and its scores."""
    train, test = make_embeddings(n, m, d, seed)
    rss_before_mb = max_rss_mb()
    compute = functools.partial(chunked_scores, chunk_rows=chunk_rows) if method == "scores" else dense_scores
    times_s = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        result = compute(train, test)
        times_s.append(time.perf_counter() - started)
    peak_mb = max_rss_mb()
    return {
        "seconds": min(times_s),
        "peak_rss_mb": peak_mb,
        "peak_rss_growth_mb": peak_mb - rss_before_mb,
        "scores": result,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="training rows")
    parser.add_argument("--m", type=int, default=1_000, help="test rows")
    parser.add_argument("--d", type=int, default=384, help="embedding dimension (all-MiniLM-L6-v2: 384)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random embeddings")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method; the best is kept")
    parser.add_argument("--chunk-rows", type=int, default=16384, help="rows per chunk in score()")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads per method (default: all)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        # Read by the BLAS libraries when the spawned workers import numpy; this process's BLAS is unused.
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = str(args.threads)
    config = {"n": args.n, "m": args.m, "d": args.d, "seed": args.seed, "repeats": args.repeats}

    print(
        f"N={args.n:,} train x M={args.m:,} test, d={args.d}, seed={args.seed}, "
        f"best of {args.repeats}, {os.cpu_count()} CPUs, BLAS threads {args.threads or 'all'}"
    )
    results = {}
    for method in ("scores", "dense"):
        result = in_fresh_process(measure, method=method, chunk_rows=args.chunk_rows, **config)
        results[method] = result
        print(
            f"{method:>6}: {result['seconds']:.3f} s ({args.n / result['seconds']:,.0f} rows/s), "
            f"peak RSS {result['peak_rss_mb']:,.0f} MB "
            f"(+{result['peak_rss_growth_mb']:,.0f} MB over the inputs)"
        )

    diffs = {
        name: float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64))))
        for name, ours, theirs in zip(
            ("ad", "md", "wsd"), results["scores"]["scores"], results["dense"]["scores"], strict=True
        )
    }
    print("max |chunked - dense|: " + ", ".join(f"{name} {diff:.2e}" for name, diff in diffs.items()))

    summary = {
        **config,
        "chunk_rows": args.chunk_rows,
        "blas_threads": args.threads or os.cpu_count(),
        "scores_s": round(results["scores"]["seconds"], 4),
        "dense_s": round(results["dense"]["seconds"], 4),
        "speedup_vs_dense": round(results["dense"]["seconds"] / results["scores"]["seconds"], 3),
        "scores_rows_per_s": round(args.n / results["scores"]["seconds"]),
        "dense_rows_per_s": round(args.n / results["dense"]["seconds"]),
        "scores_peak_rss_mb": round(results["scores"]["peak_rss_mb"], 1),
        "dense_peak_rss_mb": round(results["dense"]["peak_rss_mb"], 1),
        "scores_peak_rss_growth_mb": round(results["scores"]["peak_rss_growth_mb"], 1),
        "dense_peak_rss_growth_mb": round(results["dense"]["peak_rss_growth_mb"], 1),
        "max_abs_diff": max(diffs.values()),
        "max_abs_diff_ad": diffs["ad"],
        "max_abs_diff_md": diffs["md"],
        "max_abs_diff_wsd": diffs["wsd"],
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
