"""Two sweeps started at the same instant on one fresh workdir: one runs, the other refuses in seconds
naming the holder, and the MLflow store is whole afterwards.

`python tests/integration/test_concurrent_sweeps.py 10` repeats it ten times and prints the figures.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from dynamics.tracking import default_tracking_uri

sys.path.insert(0, str(Path(__file__).parent))
from sweep_process import SweepProcess, tiny_study, write_config  # noqa: E402


def store_is_whole(work: Path) -> tuple[bool, str]:
    """SQLite's own integrity check, the schema at MLflow's head revision, and a query through MLflow."""
    database = work / "mlflow.db"
    with sqlite3.connect(database) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    client = MlflowClient(default_tracking_uri(work))
    statuses = [run.info.status for run in client.search_runs([client.get_experiment_by_name("tiny").experiment_id])]
    whole = integrity == "ok" and len(statuses) >= 2 and set(statuses) == {"FINISHED"}
    return whole, f"integrity {integrity}, schema {revision}, runs {statuses}"


def race_once(folder: Path) -> dict[str, object]:
    """Start two identical sweeps back to back on a fresh workdir; their exit codes and what they said."""
    work = folder / "work"
    config_path = write_config(folder, tiny_study(work))
    first, second = SweepProcess(config_path, folder), SweepProcess(config_path, folder)
    started = time.monotonic()
    codes, refused_after = {}, None
    while len(codes) < 2:
        for name, sweep in (("first", first), ("second", second)):
            if name not in codes and sweep.process.poll() is not None:
                codes[name] = sweep.process.returncode
                if codes[name] == 2 and refused_after is None:
                    refused_after = time.monotonic() - started
        if time.monotonic() - started > 900:
            raise AssertionError("sweeps did not end within 15 minutes")
        time.sleep(0.2)
    outputs = {"first": first.output(), "second": second.output()}
    busy = [line for text in outputs.values() for line in text.splitlines() if line.startswith("busy:")]
    whole, detail = store_is_whole(work)
    return {
        "codes": sorted(codes.values()),
        "refused_after_s": refused_after,
        "busy_line": busy[0] if busy else None,
        "store_whole": whole,
        "store": detail,
        "outputs": outputs,
    }


def test_two_sweeps_at_once_one_refuses_clearly_and_the_store_is_whole(tmp_path):
    result = race_once(tmp_path)
    assert result["codes"] in ([0, 2], [0, 0]), result["outputs"]
    if result["codes"] == [0, 2]:
        assert result["refused_after_s"] < 30
        assert "in use by pid" in result["busy_line"] and "sweep tiny" in result["busy_line"]
    assert result["store_whole"], result["store"]


if __name__ == "__main__":
    import json
    import tempfile

    figures = []
    for repeat in range(int(sys.argv[1]) if len(sys.argv) > 1 else 10):
        with tempfile.TemporaryDirectory() as folder:
            result = race_once(Path(folder))
            result.pop("outputs")
            figures.append(result)
            print(repeat, json.dumps(result), flush=True)
    print(
        json.dumps(
            {
                "repeats": len(figures),
                "one_refused": sum(f["codes"] == [0, 2] for f in figures),
                "both_finished": sum(f["codes"] == [0, 0] for f in figures),
                "store_damaged": sum(not f["store_whole"] for f in figures),
                "slowest_refusal_s": max((f["refused_after_s"] or 0) for f in figures),
            }
        )
    )
