"""`ray job submit` as the README and the configs' headers give it: a Ray head started with `ray start --head`
on 127.0.0.1 (dashboard on loopback; token auth off for the local head, as ../shared/notes/env.md says), the
repo uploaded as the job's working dir, the offline config on a one-trial grid; the job's runs are then read
from its MLflow store. The head is this test's own: stopped by signal, never by `ray stop` (which would also
stop any other Ray on the machine, the session's included)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
DASHBOARD_PORT = 8265  # the address the README gives; another free port when something already holds it


def free_port(preferred: int | None = None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def head_env() -> dict[str, str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env["PATH"] = f"{RAY.parent}{os.pathsep}{env.get('PATH', '')}"  # the job's `python` is this environment's
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    """The dashboard address of a fresh single-node head (2 CPUs), stopped with its process group after."""
    temp = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths must fit 107 characters
    dashboard = free_port(DASHBOARD_PORT)
    # Every listening port its own: another Ray on this machine (the session's, in CI) holds the defaults, and a
    # job agent that cannot bind 52365 leaves the head answering "No available agent to submit job".
    agent_ports = ["dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
                   "runtime-env-agent-port", "ray-client-server-port", "node-manager-port", "object-manager-port"]
    command = [
        str(RAY), "start", "--head", "--block", "--num-cpus=2", "--disable-usage-stats",
        f"--port={free_port()}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
        f"--temp-dir={temp}", *(f"--{name}={free_port()}" for name in agent_ports),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=head_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"ray start exited {process.returncode}: {process.stdout.read().decode()[-3000:]}")
            probe = subprocess.run(
                [str(RAY), "job", "list", "--address", address], env=head_env(), capture_output=True, text=True
            )
            if probe.returncode == 0:
                break
            time.sleep(2)
        else:
            pytest.fail(f"the job server at {address} did not answer within 90 s")
        yield address
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        _stop_leftovers(temp)


def _stop_leftovers(temp: str) -> None:
    """Kill what the head left running under its own temp dir (and only that)."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(temp in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def test_a_submitted_offline_sweep_lands_its_runs_in_mlflow(head: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    overrides = {
        "workdir": str(work),  # absolute: the job runs in an unpacked copy of the working dir
        "storage_path": str(tmp_path / "storage"),  # a cluster needs it set; one node may use a local disk
        "data.options.per_train_task": "2",
        "data.options.per_test_task": "2",
        "grid.volume": "[16]",
        "grid.model": "[tiny-0.5m]",
        "grid.permutation": "[nft]",
        "grid.seed": "[0]",
        "evaluate.in_loop": "[]",
    }
    entrypoint = ["python", "experiments/sweep.py", "--config", "experiments/configs/offline.yaml"]
    for key, value in overrides.items():
        entrypoint += ["--set", f"{key}={value}"]  # the CLI quotes each argument of the entrypoint it runs
    submit = [str(RAY), "job", "submit", "--address", head, "--working-dir", ".", "--", *entrypoint]
    for _ in range(30):  # a busy head answers `job list` before its job agent takes submissions
        done = subprocess.run(submit, cwd=REPO, env=head_env(), capture_output=True, text=True, timeout=480)
        output = done.stdout + done.stderr
        if "No available agent to submit job" not in output:
            break
        time.sleep(2)
    assert done.returncode == 0 and "succeeded" in output, output[-4000:]
    assert "sweep finished: 1 trials (0 failed)" in output, output[-4000:]

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "dynamics-offline"]
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert [run.info.status for run in parents] == ["FINISHED"]
    assert [(run.info.run_name, run.info.status) for run in children] == [
        ("n=16 model=tiny-0.5m perm=nft seed=0", "FINISHED")
    ]
    steps = [point.step for point in client.get_metric_history(children[0].info.run_id, "test_loss/macro")]
    assert steps and steps[0] == 0
