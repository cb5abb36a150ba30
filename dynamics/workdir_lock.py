"""One process at a time per workdir: an exclusive `flock` on `<workdir>/.dynamics.lock`.

Two sweeps (or a sweep and `dynamics arrange`) writing one workdir would interleave their MLflow runs, caches
and reports; the second one to start is refused at once, told who holds the workdir:

    with hold_workdir(Path("runs/offline"), "sweep"):
        ...   # WorkdirBusy: workdir runs/offline is in use by pid 1234 on host x ('sweep', started …): …

The kernel drops a `flock` when its holder exits, however it exits (SIGKILL and out-of-memory kills included),
so there is no stale lock to clean up: a lock file left by a dead holder is taken over as it is. The file is
never deleted: a holder that unlinked it on exit would let a newcomer lock a fresh file while a waiter locks the
old one. A child forked while the lock is held keeps it held until the child exits too (the descriptor is
close-on-exec, so programs started with `subprocess` or by Ray do not). Over NFS, Linux maps `flock` to a lock
the server keeps, so hosts sharing a workdir exclude each other as well.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

LOCK_NAME = ".dynamics.lock"
_HOLDER_WAIT_S = 1.0  # a holder writes its record right after locking; give that long to appear before reporting


class WorkdirBusy(ValueError):
    """Another live process holds the workdir: the one line says which, and what to do."""


def lock_path(workdir: Path) -> Path:
    """The lock file of `workdir`."""
    return workdir / LOCK_NAME


def _holder_record(purpose: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "purpose": purpose,
        "command": shlex.join(sys.argv),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def read_holder(workdir: Path) -> dict[str, Any] | None:
    """The record the current (or last) holder of `workdir` wrote; None when there is none or it is unreadable."""
    try:
        record = json.loads(lock_path(workdir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _busy_message(workdir: Path, holder: dict[str, Any] | None) -> str:
    if holder is None:
        who = "another process (it has not recorded itself in the lock file)"
    else:
        who = (
            f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"({holder.get('purpose', '?')!r}, started {holder.get('started', '?')})"
        )
    return f"workdir {workdir} is in use by {who}: wait for it or use another workdir"


def _gone(holder: dict[str, Any]) -> bool:
    """Whether the record is a dead process's on this host: left over, its successor about to overwrite it."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _current_holder(workdir: Path) -> dict[str, Any] | None:
    """The live holder's record, waiting briefly while the one that has just locked has not yet written it."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        holder = read_holder(workdir)
        if holder is not None and not _gone(holder):
            return holder
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


@contextmanager
def hold_workdir(workdir: Path, purpose: str) -> Iterator[Path]:
    """Hold `workdir` for this process for the block (yields the lock file); `WorkdirBusy` if another holds it.

    Never waits: a second sweep on a busy workdir should fail in its first second, not queue behind hours of
    training. `purpose` (e.g. "sweep", "arrange") is what the refusal tells the other user.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    path = lock_path(workdir)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusy(_busy_message(workdir, _current_holder(workdir))) from None
        record = (json.dumps(_holder_record(purpose), sort_keys=True) + "\n").encode()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, record, 0)
        yield path
    finally:
        os.close(descriptor)  # releases the lock; the record stays, naming the last holder


def refuse_if_busy(workdir: Path) -> None:
    """`WorkdirBusy` now if another process holds `workdir`; holds nothing itself.

    The command line calls it before its slow imports (torch, Ray), so a second sweep is refused in about a
    second instead of after them; `hold_workdir` still takes the lock for the run itself.
    """
    path = lock_path(workdir)
    try:
        descriptor = os.open(path, os.O_RDWR)
    except OSError:
        return  # never held, or not a folder we can use: the preflight names that
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise WorkdirBusy(_busy_message(workdir, _current_holder(workdir))) from None
    finally:
        os.close(descriptor)
