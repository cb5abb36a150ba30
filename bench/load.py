"""Benchmark: loading and normalising N canonical-schema JSON Lines rows against a plain
`datasets.load_dataset("json")` read of the same file, measured in the same run.

    python -m bench.load                 # 1,000,000 rows (a ~250 MB file in a temporary folder)
    python -m bench.load --rows 100000   # quicker

The candidate is the whole `dynamics` path for a `source: canonical` config: read through `datasets`,
validate every row (file/row/field errors), check duplicate ids and task leaks, build the canonical
Arrow table. Each side runs in its own fresh process with its own empty `datasets` cache, so neither
benefits from the other's imports or cache. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fresh import in_fresh_process, max_rss_mb


def write_rows(path: Path, rows: int) -> None:
    """Synthetic canonical rows: 200 train tasks and 20 held-out test tasks."""
    with path.open("w", encoding="utf-8") as handle:
        for index in range(rows):
            test = index % 11 == 0
            task = f"held_out_{index % 20}" if test else f"task_{index % 200}"
            row = {
                "id": f"bench/{index:08d}",
                "source": "bench",
                "task": task,
                "category": task.rsplit("_", 1)[0],
                "split": "test" if test else "train",
                "messages": [
                    {"role": "user", "content": f"Question {index}: what is {index % 97} plus {index % 89}?"},
                    {"role": "assistant", "content": str(index % 97 + index % 89)},
                ],
                "references": [str(index % 97 + index % 89)],
            }
            handle.write(json.dumps(row) + "\n")


def plain_read(path: Path) -> int:
    import datasets

    return datasets.load_dataset("json", data_files=str(path), split="train").num_rows


def dynamics_load(path: Path) -> int:
    from dynamics.config import DataConfig
    from dynamics.data.sources import load_examples

    return load_examples(DataConfig(source="canonical", path=str(path)), seed=0).num_rows


def timed_in_child(role: str, path: Path, cache_dir: Path) -> tuple[float, int, float]:
    """(seconds, rows, peak RSS MB) of one side, run in a fresh interpreter with an empty datasets cache."""
    # `datasets` reads HF_DATASETS_CACHE when it is imported, which `run_role` does in the child after this is set.
    env = {"HF_DATASETS_CACHE": str(cache_dir), "HF_DATASETS_OFFLINE": "1"}
    result = in_fresh_process(run_role, env=env, role=role, path=path)
    return result["seconds"], result["rows"], result["peak_rss_mb"]


def run_role(role: str, path: Path) -> dict[str, Any]:
    """One side in this (fresh) process: its seconds, rows and peak RSS; its own output is discarded."""
    # As when each side ran as a subprocess with its output captured: progress bars and logs do not reach
    # the terminal, and the benchmark prints only its figures.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        # Imports happen before the clock starts: both sides pay them, and they are not loading.
        import datasets  # noqa: F401

        import dynamics.data.sources  # noqa: F401

        started = time.perf_counter()
        rows = plain_read(path) if role == "plain" else dynamics_load(path)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": max_rss_mb()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        path = folder / "rows.jsonl"
        write_rows(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        baseline_s, plain_rows, plain_rss = timed_in_child("plain", path, folder / "hf-plain")
        candidate_s, loaded, peak_rss_mb = timed_in_child("dynamics", path, folder / "hf-dynamics")
        assert plain_rows == loaded == args.rows, (plain_rows, loaded, args.rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.rows:,} rows, {size_mb:.0f} MB of JSON Lines")
    print(f"datasets.load_dataset('json'): {baseline_s:.2f} s ({args.rows / baseline_s:,.0f} rows/s)")
    print(f"dynamics canonical load:       {candidate_s:.2f} s ({args.rows / candidate_s:,.0f} rows/s)")
    figures = {
        "rows": args.rows,
        "datasets_s": round(baseline_s, 3),
        "dynamics_s": round(candidate_s, 3),
        "datasets_rows_per_s": round(args.rows / baseline_s),
        "dynamics_rows_per_s": round(args.rows / candidate_s),
        "ratio_vs_datasets_read": round(baseline_s / candidate_s, 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "datasets_peak_rss_mb": round(plain_rss, 1),
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
