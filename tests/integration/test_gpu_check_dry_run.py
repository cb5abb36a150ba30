"""`python -m bench.gpu_check --dry-run`: the GPU check's own code on CPU workers (gloo), end to end, so the run
on a GPU node is right the first time. Every case trains, its figures are finite, and a CPU has no MFU; the
evaluating case generates, scores and times its in-loop evaluation."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Each model with each ZeRO stage and each worker count, each stage with each worker count: the CPU set.
CASES = {"tiny/zero2/1w", "tiny/zero3/2w", "llama-small/zero2/2w", "llama-small/zero3/1w+eval"}


def test_dry_run_reports_every_case(tmp_path):
    out = tmp_path / "x.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--dry-run", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(out.read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == summary  # the last stdout line is the same object
    assert summary["device"] == "cpu (dry run)" and summary["skipped"] == []
    cases = {case["case"]: case for case in summary["cases"]}
    assert set(cases) == CASES
    for name, case in cases.items():
        assert case["error"] is None, f"{name}: {case['error']}"
        for figure in ("tokens_per_s", "steady_tokens_per_s", "train_s", "wall_s"):
            assert math.isfinite(case[figure]) and case[figure] > 0, f"{name}: {figure} = {case[figure]}"
        assert case["mfu"] is None and case["steady_mfu"] is None  # no peak FLOP/s for a CPU
        assert case["peak_memory_gib"] is None  # GPU memory only
        assert case["train_loss_last"] < case["train_loss_first"], name
        assert case["steps"] == 3 and case["tokens_per_step"] == case["global_batch"] * case["seq_len"]
    # The LLaMA config keeps a real 32k vocabulary (embeddings padded past the byte tokenizer's ids).
    assert cases["llama-small/zero2/2w"]["params"] == 2 * 32_000 * 128 + 4 * (4 * 128**2 + 3 * 128 * 344 + 256) + 128
    evaluating = cases["llama-small/zero3/1w+eval"]
    assert evaluating["evaluations"] == 2  # at step 0 and at the last step (3 steps, every 10)
    assert evaluating["eval_generation_s"] > 0 and evaluating["eval_loss_s"] > 0
    assert 0 < evaluating["eval_share"] < 1 and 0 <= evaluating["rouge_l_last"] <= 100
    assert all("evaluations" not in case for name, case in cases.items() if name != "llama-small/zero3/1w+eval")
    assert summary["wall_s"] > 0
