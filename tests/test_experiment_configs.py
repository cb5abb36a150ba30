"""Every experiment config is valid, says how to run it, and can point at any registered data source."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamics.config import load_config
from dynamics.data.formats import FORMATS
from dynamics.sweep.plan import check_names

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "configs").glob("*.yaml"))
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_and_headed_by_its_command(path: Path) -> None:
    config = load_config(path)
    check_names(config, origin=str(path))  # every source, template and permutation it names is registered
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# ") and "experiments/sweep.py" in first_line
    assert f"experiments/configs/{path.name}" in first_line
    assert set(config.grid.model) <= set(config.models)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("source", FORMATS.names())
def test_config_can_point_at_any_registered_source(path: Path, source: str) -> None:
    config = load_config(path, {"data.source": source, "data.path": "somewhere/local", "data.options": {}})
    check_names(config, origin=str(path))
    assert config.data.source == source


def test_at_least_one_config_per_study() -> None:
    names = {path.stem for path in CONFIGS}
    assert "offline" in names
    assert any(name.startswith("study_a_") for name in names) and any(name.startswith("study_b_") for name in names)


@pytest.mark.skipif(not (SHARED / "niv2-sample").is_dir(), reason=f"no NIV2 sample at {SHARED}")
def test_offline_study_prepares_on_the_real_niv2_sample(tmp_path: Path) -> None:
    from dynamics.sweep.study import prepare

    offline = next(path for path in CONFIGS if path.stem == "offline")
    config = load_config(
        offline,
        {
            "workdir": str(tmp_path / "work"),
            "data.source": "niv2",
            "data.path": str(SHARED / "niv2-sample"),
            "data.options": {},  # the built-in source's options are not niv2's
            "data.sample": {"mode": "first", "per_train_task": 10, "per_test_task": 5},
            "grid.volume": [32, "all"],
        },
    )
    study = prepare(config)
    assert study.train_pool.num_rows == 90 and study.test.num_rows == 60  # 9 × 10 train, 12 × 5 test
    assert study.config.grid.volume == [32, 90]
    assert set(study.train_pool.column("source").to_pylist()) == {"niv2"}
