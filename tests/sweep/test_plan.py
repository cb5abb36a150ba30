"""Planning a sweep (dynamics.sweep.plan): every name resolved before any work, volumes, the trial table.

Run: `python -m pytest -q tests/sweep/test_plan.py`
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynamics.arrange.artifact import ArrangementKey
from dynamics.config import ConfigError, TrialFactors, load_config
from dynamics.data.problems import DataError
from dynamics.sweep.plan import arrangements_needed, check_names, resolve_volumes, trial_table

REPO = Path(__file__).resolve().parents[2]
OFFLINE = REPO / "experiments" / "configs" / "offline.yaml"


def _error(overrides: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        check_names(load_config(OFFLINE, overrides), origin="offline.yaml")
    return str(caught.value)


def test_the_offline_config_resolves() -> None:
    check_names(load_config(OFFLINE), origin="offline.yaml")


PERMUTATION = "key 'grid.permutation': "
SOURCE = "key 'data.source': "
NAME_CASES = [
    ({"grid.permutation": ["nft", "nfx"]}, f"offline.yaml: {PERMUTATION}unknown permutation 'nfx'; did you mean 'nft'"),
    ({"grid.permutation": ["tma_min[3:1]"]}, f"{PERMUTATION}permutation 'tma_min[3:1]': the rounds range [3:1) is"),
    ({"grid.permutation": ["rt[0:2]"]}, f"{PERMUTATION}permutation 'rt[0:2]': a rounds range [i:j] applies only"),
    ({"data.source": "nvi2", "data.options": {}}, f"{SOURCE}unknown data source 'nvi2'; did you mean 'niv2'?"),
    ({"train.template": "studyb"}, "key 'train.template': unknown template 'studyb'; did you mean 'study_b'?"),
    ({"data.source": "canonical", "data.options": {}}, "key 'data.path': source 'canonical' needs a local path"),
    ({"data.options.per_train_tasks": 3}, "key 'data.options': source 'builtin': options.per_train_tasks: "),
    (
        {"data.test_source": {"source": "niv3", "path": "x"}},
        "key 'data.test_source.source': unknown data source 'niv3'; did you mean 'niv2'?",
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), NAME_CASES)
def test_an_unknown_name_names_the_file_and_the_key(overrides: dict, expected: str) -> None:
    assert expected in _error(overrides)


def test_every_problem_is_listed_at_once() -> None:
    message = _error({"grid.permutation": ["nfx"], "train.template": "studyb", "data.source": "nvi2"})
    keys = [line.split("'")[1] for line in message.splitlines()]
    assert keys == ["data.source", "train.template", "grid.permutation"]


@pytest.mark.parametrize(
    ("key", "value", "named", "suggested"),
    [
        ("grid.permutation", "[nfx]", "grid.permutation", "'nft'"),
        ("data.source", "nvi2", "data.source", "'niv2'"),
        ("train.template", "studyb", "train.template", "'study_b'"),
    ],
)
def test_the_users_command_exits_2_in_seconds_without_starting_ray(
    tmp_path: Path, key: str, value: str, named: str, suggested: str
) -> None:
    """`python experiments/sweep.py --set KEY=VALUE` in a fresh process, as a user types it."""
    command = [sys.executable, str(REPO / "experiments" / "sweep.py"), "--set", f"{key}={value}"]
    command += ["--set", f"workdir={tmp_path / 'work'}"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    elapsed = time.perf_counter() - started
    assert done.returncode == 2, done.stderr
    error_lines = [line for line in done.stderr.splitlines() if "config error" in line]
    assert len(error_lines) == 1, done.stderr
    assert f"key '{named}'" in error_lines[0] and f"did you mean {suggested}" in error_lines[0]
    assert "Traceback" not in done.stderr
    assert "Ray" not in done.stdout + done.stderr  # no "Started a local Ray instance", no Ray log lines
    assert not (tmp_path / "work").exists()  # nothing written either
    assert elapsed < 60


def test_volumes_resolve_against_the_pool() -> None:
    config = load_config(OFFLINE, {"grid.volume": [160, "all", 1440]})
    assert resolve_volumes(config, 1440).grid.volume == [160, 1440]  # 'all' is 1440, named once
    with pytest.raises(DataError, match="grid.volume: 2000 exceeds the 1440 training examples"):
        resolve_volumes(load_config(OFFLINE, {"grid.volume": [2000]}), 1440)


def test_the_trial_table_is_the_grid_and_arrangements_are_shared_by_models() -> None:
    grid = {"grid.volume": [160, 640], "grid.model": ["tiny-0.5m", "tiny-2m"], "grid.seed": [0, 1]}
    config = resolve_volumes(load_config(OFFLINE, grid), 1440)
    trials = trial_table(config)
    assert len(trials) == 2 * 2 * 3 * 2 and len(set(trials)) == len(trials)
    assert trials[0] == TrialFactors(volume=160, model="tiny-0.5m", permutation="nft", seed=0)
    keys = arrangements_needed(trials)
    assert len(keys) == 2 * 3 * 2 and keys[0] == ArrangementKey(160, "nft", 0)
    assert set(keys) == {ArrangementKey(t.volume, t.permutation, t.seed) for t in trials}


def test_a_grid_with_all_still_in_it_has_no_trial_table() -> None:
    with pytest.raises(ValueError, match="resolve against the pool"):
        trial_table(load_config(OFFLINE, {"grid.volume": ["all"]}))
