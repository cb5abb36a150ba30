"""Fresh-process helpers shared by the benchmarks.

Each side of a benchmark runs in its own spawned interpreter, so its peak RSS (ru_maxrss never goes down),
CPU time, imports, caches and thread pools are its own and not left over from the other side.

    result = in_fresh_process(measure, timeout_s=600, env={"HF_DATASETS_CACHE": folder}, method="dense", n=1000)

A child answers over a pipe with ("ok", value) or ("error", traceback text); `receive` turns the second into an
exception in the parent, which has the terminal. Run the benchmarks from the repository root (`python -m bench.x`),
so that a spawned child can import `bench` and the function it is given.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

T = TypeVar("T")

_EXIT_GRACE_S = 10.0  # after answering, a child that has not exited by then is killed with its tree


def max_rss_mb() -> float:
    """This process's peak resident set so far, in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def cpu_s() -> float:
    """User + system CPU seconds this process has used, all its threads together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def kill_tree(pid: int) -> None:
    """Kill a process and all its descendants (e.g. Ray's daemons), children first; gone ones are skipped."""
    import psutil

    try:
        parent = psutil.Process(pid)
        processes = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@contextlib.contextmanager
def reporting_errors(connection: Connection) -> Iterator[None]:
    """In a child: send any exception raised in the block to the parent as ("error", traceback text)."""
    try:
        yield
    except BaseException as error:  # reported by the parent, which has the terminal
        connection.send(("error", "".join(traceback.format_exception(type(error), error, error.__traceback__))))


def spawn(target: Callable[..., None], *args: Any, duplex: bool = False) -> tuple[Connection, BaseProcess]:
    """Start `target(child_end, *args)` in a spawned interpreter; returns (parent end of the pipe, process).

    Spawn, not fork: the child starts without this process's memory, threads and imported modules.
    """
    context = multiprocessing.get_context("spawn")
    connection, child_end = context.Pipe(duplex=duplex)
    process = context.Process(target=target, args=(child_end, *args))
    process.start()
    child_end.close()  # so that a child that dies without answering reads as end of file, not silence
    return connection, process


def receive(connection: Connection, process: BaseProcess, timeout_s: float | None, what: str) -> Any:
    """The child's next answer; a child silent past `timeout_s` (e.g. a hung Ray pool) is killed with its tree."""
    if not connection.poll(timeout_s):
        kill_tree(process.pid)
        process.join()
        raise TimeoutError(f"{what}: no answer within {timeout_s:.0f} s; killed the process")
    try:
        status, payload = connection.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"{what}: the process exited (code {process.exitcode}) without an answer") from None
    if status != "ok":
        raise RuntimeError(f"{what} failed in its process:\n{payload}")
    return payload


def _child(connection: Connection, function: Callable[..., Any], env: dict[str, str], kwargs: dict[str, Any]) -> None:
    """The spawned side of `in_fresh_process`: environment first, then the call, then its answer."""
    with reporting_errors(connection):
        os.environ.update(env)
        connection.send(("ok", function(**kwargs)))


def in_fresh_process(
    function: Callable[..., T], *, timeout_s: float | None = None, env: Mapping[str, str] | None = None, **kwargs: Any
) -> T:
    """`function(**kwargs)` in a spawned interpreter; returns its result, raises with the child's traceback.

    `env` is put into the child's os.environ before `function` is called, so a module that reads a variable
    when imported (e.g. `datasets` and HF_DATASETS_CACHE) sees it if `function` imports it. Modules imported when
    the child starts (the main module, `function`'s module) see this process's environment. After `timeout_s`
    without an answer the child and its whole process tree are killed and TimeoutError is raised.
    `function`, the keyword arguments and the result must be picklable.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    connection, process = spawn(_child, function, dict(env or {}), kwargs)
    try:
        result = receive(connection, process, timeout_s, getattr(function, "__name__", repr(function)))
        process.join(None if deadline is None else max(_EXIT_GRACE_S, deadline - time.monotonic()))
        return result
    finally:
        if process.is_alive():  # timed out on exit, or this process was interrupted while waiting
            kill_tree(process.pid)
            process.join()
        connection.close()
