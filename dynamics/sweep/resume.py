"""One sweep per name: a second start under a name the store holds is refused; `--resume` continues the first.

A sweep is its parent run in the tracking store (experiment `tracking.experiment`, run name `name`) and its Tune
experiment `<name>-<parent run id[:8]>` under `storage_path`. Starting again without `--resume` would mix a
second set of runs and trial folders into the first, so it is refused, before any Ray work. `--resume` finds the
parent run, refuses a config that differs from the one it ran (naming every changed key), reopens the run, and
lets Tune run only the trials that did not finish; each of those re-attaches to its own child run and continues
from its newest resume checkpoint.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities import Run

from dynamics.config import SweepConfig
from dynamics.sweep.preflight import PreflightError
from dynamics.tracking import client_for, find_sweep_run

CONFIG_ARTIFACT = "sweep_config.json"  # the resolved config a sweep ran with, in its parent run


def tune_experiment_name(config: SweepConfig, parent_run_id: str) -> str:
    """The Tune experiment folder of a sweep: the same on every resume of it."""
    return f"{config.name}-{parent_run_id[:8]}"


def flattened(value: Any, prefix: str = "") -> dict[str, Any]:
    """'a.b.c' → leaf value of a nested mapping (lists are leaves: a changed grid axis is one key)."""
    if isinstance(value, dict):
        leaves: dict[str, Any] = {}
        for key, item in value.items():
            leaves |= flattened(item, f"{prefix}{key}.")
        return leaves
    return {prefix.rstrip("."): value}


def changed_keys(ran: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two resolved configs, added and removed ones included."""
    before, after = (flattened(json.loads(json.dumps(config))) for config in (ran, now))  # tuples → lists
    return sorted(key for key in before.keys() | after.keys() if before.get(key, ...) != after.get(key, ...))


def _config_it_ran(run: Run, tracking_uri: str) -> dict[str, Any] | None:
    """The resolved config the sweep logged at its start; None if it never got that far."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client_for(tracking_uri).download_artifacts(run.info.run_id, CONFIG_ARTIFACT, folder)
        except (MlflowException, OSError):
            return None
        return json.loads(Path(path).read_text(encoding="utf-8"))


def existing_sweep(config: SweepConfig, tracking_uri: str, resume: bool) -> Run | None:
    """The sweep `--resume` continues (None for a new one); PreflightError when a new sweep would reuse a name,
    when there is nothing to resume, or when the config differs from the one the sweep ran with."""
    found = find_sweep_run(tracking_uri, config.tracking.experiment, config.name)
    where = f"experiment {config.tracking.experiment!r} of {tracking_uri}"
    if not resume:
        if found is not None:
            raise PreflightError(
                f"a sweep named {config.name!r} already exists in {where} (run {found.info.run_id}, "
                f"{found.info.status}): continue it with --resume, or start a new one with --set name=<new name>"
            )
        return None
    if found is None:
        raise PreflightError(f"nothing to resume: no sweep named {config.name!r} in {where}")
    ran = _config_it_ran(found, tracking_uri)
    if ran is not None:
        changed = changed_keys(ran, config.model_dump())
        if changed:
            raise PreflightError(
                f"--resume refused: the config differs from the one sweep {config.name!r} (run {found.info.run_id}) "
                f"ran with, at {', '.join(changed)}; resume with the same config, or start a new sweep with "
                "--set name=<new name>"
            )
    if found.info.status == "FINISHED":
        raise PreflightError(
            f"nothing to resume: sweep {config.name!r} (run {found.info.run_id}) in {where} finished; start a new "
            "one with --set name=<new name>"
        )
    return found
