"""Ctrl-C (SIGINT) and SIGTERM (`ray job stop`) at any stage of a sweep: stop its Ray work, end its runs KILLED.

The first signal raises KeyboardInterrupt in the driver, as Python does, so every stage unwinds through its
own cleanup (the parent run ends KILLED, the driver stops the Ray work it started and ends unfinished trial
runs KILLED). A second signal while that runs forces: this process's children are killed and it exits 130.
Ray Tune's own SIGINT handler is switched off (`TUNE_DISABLE_SIGINT_HANDLER`): it swallows the first Ctrl-C
and returns a half-run grid as if it had finished.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing MLflow costs 1.4 s, and the CLI imports this module before any config is read
    from dynamics.tracking import TrackedRun

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a process stopped by Ctrl-C
UNFINISHED = ("RUNNING", "SCHEDULED")


class SweepInterrupted(Exception):
    """The sweep stopped on a signal; its runs are KILLED. The message is the line to print."""


def kill_process_tree() -> None:
    """Kill every descendant of this process (the embedded Ray cluster's processes), hard."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # already gone
            child.kill()


@contextmanager
def second_interrupt_forces() -> Iterator[None]:
    """Inside the block: the first SIGINT/SIGTERM is a KeyboardInterrupt, a second one exits at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are delivered to the main thread only; nothing to install
        return
    received = 0

    def on_signal(signum: int, frame: object) -> None:
        nonlocal received
        received += 1
        if received == 1:
            raise KeyboardInterrupt
        print(f"{signal.Signals(signum).name} again: stopping now, without cleaning up", file=sys.stderr, flush=True)
        kill_process_tree()
        os._exit(EXIT_INTERRUPTED)

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def kill_unfinished_trials(sweep: TrackedRun) -> int:
    """End every trial run of `sweep` that is still RUNNING as KILLED; how many there were."""
    from dynamics.tracking import TrackedRun, child_runs

    unfinished = [run for run in child_runs(sweep) if run.info.status in UNFINISHED]
    for run in unfinished:
        TrackedRun(sweep.tracking_uri, run.info.run_id).kill()
    return len(unfinished)


def threads_now() -> frozenset[threading.Thread]:
    """The live threads, to tell later which ones the sweep's Ray work started."""
    return frozenset(threading.enumerate())


def stop_ray(started_here: bool, threads_before: frozenset[threading.Thread], timeout_s: float = 5.0) -> None:
    """Stop the Ray work of this driver: the whole embedded cluster when we started it, else our job's.

    Threads that Ray work started since `threads_before` (Ray Data's executor winds down for a second or two
    after an interrupt) are waited for first: one that calls into Ray after `ray.shutdown` makes Ray's core
    worker end the whole process with exit code 1.
    """
    import ray

    deadline = time.monotonic() + timeout_s
    for thread in set(threading.enumerate()) - threads_before:
        if thread is not threading.current_thread():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if ray.is_initialized():
        ray.shutdown()  # on a cluster this ends the job, whose actors (Tune trials, Train workers) die with it
    if started_here:
        kill_process_tree()  # anything that outlived the shutdown
