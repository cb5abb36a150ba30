"""A sweep run as a user runs it: its own process and session, its own Ray temp folder, its log watched.

Shared by the interrupt and concurrency tests (and `bench/`-style measurements): start a sweep, wait for a
line of its output, send a signal to its whole process group as a terminal's Ctrl-C does, and find the Ray
processes it left behind by the temp folder only they were told about.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TINY = {"builtin": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}}


def tiny_study(work: Path, **overrides: Any) -> dict[str, Any]:
    """One short trial on the built-in data: embedding takes ~20 s, training ~40 s on 2 cores.

    No `scaling` section: the defaults (2 workers × 1 CPU, which never fit a 2-core machine beside the trial's
    driver) are fitted to the machine, so every test using this also runs a config without one.
    """
    config = {
        "name": "tiny",
        "workdir": str(work),
        "data": {"source": "builtin", "options": {"per_train_task": 2, "per_test_task": 1}},
        "arrange": {"num_actors": 1, "cpus_per_actor": 0.5},
        "models": {"tiny": TINY},
        "train": {"global_batch_size": 16, "micro_batch_size": 8, "max_length": 96, "eval_every": 1},
        "tracking": {"experiment": "tiny"},
        "grid": {"volume": [64], "model": ["tiny"], "permutation": ["nft"], "seed": [0]},
    }
    config.update(overrides)
    return config


class SweepProcess:
    """`python experiments/sweep.py --config <path>` in a new session, output collected line by line."""

    def __init__(self, config_path: Path, cwd: Path, *args: str):
        # Ray's socket paths must stay under ~107 characters: a short folder of our own under /tmp.
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
        env = os.environ | {"RAY_TMPDIR": str(self.ray_tmp), "PYTHONUNBUFFERED": "1"}
        self.started = time.monotonic()
        self.started_at = time.time()  # for what the sweep wrote to shared stores, e.g. MLflow start times
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "experiments" / "sweep.py"), "--config", str(config_path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()

    def wait_for(self, pattern: str, timeout_s: float) -> str:
        """The first output line matching `pattern`; AssertionError with the tail if it never comes."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._new_line:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"no line matching {pattern!r} (exit {self.process.poll()}):\n{tail}")
                self._new_line.wait(timeout=1.0)

    def interrupt(self) -> float:
        """SIGINT to the whole process group, as Ctrl-C in a terminal; the time it was sent."""
        os.killpg(self.process.pid, signal.SIGINT)
        return time.monotonic()

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout=timeout_s)

    def output(self) -> str:
        time.sleep(0.2)  # the collector drains the pipe after exit
        return "\n".join(self.lines)

    def ray_processes_left(self) -> list[str]:
        """Command lines of live processes that belong to this sweep's Ray (they name its temp folder)."""
        import psutil

        left = []
        for process in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if str(self.ray_tmp) in cmdline:
                left.append(cmdline[:200])
        return left


def wait_for_training(work: Path, experiment: str, timeout_s: float, since: float = 0.0) -> None:
    """Until a trial run of `experiment` started after `since` (time.time()) has logged a metric: its DeepSpeed
    workers are in the training loop (observed in the MLflow store, from outside the sweep)."""
    from dynamics.tracking import client_for, default_tracking_uri

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (work / "mlflow.db").exists():
            client = client_for(default_tracking_uri(work))  # under the store's lock: it may be new
            found = client.get_experiment_by_name(experiment)
            runs = client.search_runs([found.experiment_id], "tags.`mlflow.parentRunId` IS NOT NULL") if found else []
            if any(run.data.metrics and run.info.start_time >= since * 1000 for run in runs):
                return
        time.sleep(0.5)
    raise AssertionError(f"no trial of {experiment!r} logged a metric within {timeout_s:.0f} s")


LONG_TRAINING = {  # ~300 optimizer steps of the tiny model (~20 s on 2 cores): interrupted mid-loop for sure
    "global_batch_size": 16,
    "micro_batch_size": 8,
    "max_length": 96,
    "epochs": 150,
    "eval_every": 25,
}


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
