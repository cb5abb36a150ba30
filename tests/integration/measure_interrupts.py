"""Measure Ctrl-C at each stage, as a terminal sends it (the process group) and as `kill -INT <pid>` does.

    python tests/integration/measure_interrupts.py [training:pid …]   (default: every stage × target)

Per interrupt: seconds from the signal to exit, the exit code, the runs' statuses, the Ray processes left; then
a second Ctrl-C 0.3 s after the first (the forced path); then the same command run to the end. The last line
is one JSON object of the figures.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).parent))
from sweep_process import LONG_TRAINING, SweepProcess, tiny_study, wait_for_training, write_config  # noqa: E402

from dynamics.tracking import default_tracking_uri  # noqa: E402

STAGES = {"embedding": r"Starting execution of Dataset", "training": None}  # None: a trial has logged a metric


def statuses(work: Path) -> dict[str, int]:
    client = MlflowClient(default_tracking_uri(work))
    experiment = client.get_experiment_by_name("tiny")
    counts: dict[str, int] = {}
    for run in client.search_runs([experiment.experiment_id]) if experiment else []:
        kind = "trial" if "mlflow.parentRunId" in run.data.tags else "parent"
        counts[f"{kind}:{run.info.status}"] = counts.get(f"{kind}:{run.info.status}", 0) + 1
    return counts


def interrupt(config: Path, cwd: Path, work: Path, stage: str, target: str, twice: bool = False) -> dict:
    sweep = SweepProcess(config, cwd)
    if STAGES[stage] is None:
        wait_for_training(work, "tiny", timeout_s=600, since=sweep.started_at)
        time.sleep(0.5)
    else:
        sweep.wait_for(STAGES[stage], timeout_s=600)
        time.sleep(1.0)
    if target == "group":
        sent = sweep.interrupt()
    else:
        os.kill(sweep.process.pid, signal.SIGINT)
        sent = time.monotonic()
    if twice:
        time.sleep(0.3)
        os.killpg(sweep.process.pid, signal.SIGINT)
    code = sweep.wait(timeout_s=120)
    took = time.monotonic() - sent
    time.sleep(1.0)
    lines = [line for line in sweep.output().splitlines() if line.strip()]
    return {
        "stage": stage,
        "signal_to": target,
        "twice": twice,
        "exit_code": code,
        "exit_s": round(took, 1),
        "last_line": lines[-1][:160] if lines else "",
        "traceback": "Traceback" in sweep.output(),
        "ray_processes_left": len(sweep.ray_processes_left()),
        "runs": statuses(work),
    }


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="interrupts-"))
    work = folder / "work"
    config = write_config(folder, tiny_study(work, train=LONG_TRAINING))
    figures = []
    cases = [(stage, target) for stage in STAGES for target in ("group", "pid")]
    only = sys.argv[1:] or None  # e.g. training:pid
    for stage, target in cases:
        if only is None or f"{stage}:{target}" in only:
            figures.append(interrupt(config, folder, work, stage, target))
            print(json.dumps(figures[-1]), flush=True)
    figures.append(interrupt(config, folder, work, "training", "group", twice=True))
    print(json.dumps(figures[-1]), flush=True)
    final = SweepProcess(config, folder)
    final_code = final.wait(timeout_s=900)
    fitted = [line for line in final.output().splitlines() if "cpus_per_worker not set" in line]
    print(
        json.dumps(
            {
                "interrupts": len(figures),
                "slowest_exit_s": max(f["exit_s"] for f in figures if not f["twice"]),
                "forced_exit_s": figures[-1]["exit_s"],
                "exit_codes": sorted({f["exit_code"] for f in figures}),
                "tracebacks": sum(f["traceback"] for f in figures),
                "ray_processes_left": sum(f["ray_processes_left"] for f in figures),
                "runs_after_interrupts": figures[-2]["runs"],
                "then_same_command_exit_code": final_code,
                "runs_at_end": statuses(work),
                "no_scaling_section_fitted": fitted[0].split(": ", 1)[-1] if fitted else None,
            }
        )
    )


if __name__ == "__main__":
    main()
