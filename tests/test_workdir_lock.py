"""One process per workdir (dynamics.workdir_lock), with real processes: a live holder refuses others and says
who it is; a dead one, however it died, blocks nobody."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dynamics.workdir_lock import LOCK_NAME, WorkdirBusy, hold_workdir, read_holder

HOLD = """
import sys
from pathlib import Path
from dynamics.workdir_lock import hold_workdir
with hold_workdir(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
"""

RAW_FLOCK = """
import fcntl, os, sys
descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""

TRY = """
import sys
from pathlib import Path
from dynamics.workdir_lock import WorkdirBusy, hold_workdir
try:
    with hold_workdir(Path(sys.argv[1]), "arrange"):
        print("acquired")
except WorkdirBusy as error:
    print(f"busy: {error}")
"""


@contextmanager
def holder(script: str, *args: str) -> Iterator[subprocess.Popen]:
    """A child process running `script` that holds the lock until the block ends (its stdin closes)."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        yield child
    finally:
        if child.poll() is None and child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)


def attempt(workdir: Path) -> str:
    """What another process gets when it asks for `workdir`."""
    done = subprocess.run([sys.executable, "-c", TRY, str(workdir)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_live_holder_refuses_another_process_and_names_itself(tmp_path: Path) -> None:
    workdir = tmp_path / "runs" / "offline"
    with holder(HOLD, str(workdir), "sweep") as child:
        answer = attempt(workdir)
        with pytest.raises(WorkdirBusy) as refused, hold_workdir(workdir, "arrange"):
            pass
    message = str(refused.value)
    assert answer == f"busy: {message}" and "\n" not in message
    assert re.fullmatch(
        rf"workdir {re.escape(str(workdir))} is in use by pid {child.pid} on host {re.escape(socket.gethostname())} "
        r"\('sweep', started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\): wait for it or use another workdir",
        message,
    ), message
    assert isinstance(refused.value, ValueError)
    assert attempt(workdir) == "acquired"  # released with its holder


def test_the_lock_file_records_the_holder(tmp_path: Path) -> None:
    with hold_workdir(tmp_path, "sweep") as path:
        assert path == tmp_path / LOCK_NAME
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["purpose"] == "sweep" and record["command"] and record["started"].endswith("Z")
        assert read_holder(tmp_path) == record


def test_a_killed_holder_leaves_its_file_but_blocks_nobody(tmp_path: Path) -> None:
    with holder(HOLD, str(tmp_path), "sweep") as child:
        child.send_signal(signal.SIGKILL)  # no cleanup of any kind runs
        child.wait(timeout=30)
    assert (read_holder(tmp_path) or {}).get("pid") == child.pid  # the dead holder's record is still there
    with hold_workdir(tmp_path, "arrange"):
        assert (read_holder(tmp_path) or {}).get("pid") == os.getpid()
    assert attempt(tmp_path) == "acquired"


def test_a_leftover_file_from_another_host_blocks_nobody(tmp_path: Path) -> None:
    record = {"pid": 1, "host": "gone-node", "purpose": "sweep", "command": "x", "started": "2026-01-01T00:00:00Z"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    assert attempt(tmp_path) == "acquired"


def test_one_process_cannot_hold_a_workdir_twice(tmp_path: Path) -> None:
    with (
        hold_workdir(tmp_path, "sweep"),
        pytest.raises(WorkdirBusy, match=f"pid {os.getpid()} "),
        hold_workdir(tmp_path, "arrange"),
    ):
        pass
    with hold_workdir(tmp_path, "arrange"):  # released by the outer block
        pass


def test_a_holder_that_wrote_no_record_is_still_refused_in_words(tmp_path: Path) -> None:
    with holder(RAW_FLOCK, str(tmp_path / LOCK_NAME)):
        answer = attempt(tmp_path)
    assert answer == (
        f"busy: workdir {tmp_path} is in use by another process (it has not recorded itself in the lock file): "
        "wait for it or use another workdir"
    )


def test_refuse_if_busy_names_the_holder_and_holds_nothing(tmp_path):
    import subprocess
    import sys

    from dynamics.workdir_lock import WorkdirBusy, hold_workdir, refuse_if_busy

    work = tmp_path / "work"
    refuse_if_busy(work)  # never held: no lock file, nothing to refuse
    with hold_workdir(work, "sweep a"):
        pass
    refuse_if_busy(work)  # released: free again
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from dynamics.workdir_lock import hold_workdir\n"
            "with hold_workdir(Path(sys.argv[1]), 'sweep other'):\n    print('held', flush=True); time.sleep(60)",
            str(work),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkdirBusy, match=r"in use by pid \d+ .*'sweep other'"):
            refuse_if_busy(work)
    finally:
        holder.kill()
        holder.wait()
    refuse_if_busy(work)  # the holder died: its flock went with it
    with hold_workdir(work, "sweep b"):  # and the probe left nothing held behind
        pass
