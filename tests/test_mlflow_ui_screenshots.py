"""tools/mlflow_ui_screenshots.py in a real headless Chromium, on a small store made here the way a sweep makes one
(dynamics.tracking: a parent run, three trials tagged `permutation` with `test_loss/macro` curves, the experiment
tagged as model training). Checks that every screenshot is written and is a picture, not a blank page, and that
the walk-through found the child runs and a `test_loss/macro` curve per group.

Skipped without Chromium, chromedriver or Selenium (CI has none): `apt-get install chromium chromium-driver`,
`pip install selenium`. About 30 s, most of it `mlflow ui` starting.

Run: `python -m pytest -q tests/test_mlflow_ui_screenshots.py`
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dynamics.tracking import start_sweep_run, start_trial_run

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "mlflow_ui_screenshots.py"
SHOTS = [
    "01_landing.png",
    "02_runs.png",
    "03_chart_collapsed.png",
    "04_runs_expanded.png",
    "05_runs_grouped.png",
    "06_chart_metric.png",
    "07_chart_metric_full.png",
]
ORDERS = ("nft", "fft", "rt")

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None or shutil.which("chromedriver") is None,
    reason="needs a Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)",
)


def make_store(folder: Path) -> Path:
    """A sweep's store in miniature: one parent, one trial per order, test loss at steps 0, 2, 4."""
    database = folder / "mlflow.db"
    uri = f"sqlite:///{database}"
    sweep = start_sweep_run(uri, "dynamics-ui-test", "ui-study", params={"num_trials": len(ORDERS)})
    for rank, order in enumerate(ORDERS):
        tags = {"permutation": order}
        trial = start_trial_run(sweep, f"perm={order} seed=0", params=tags, tags=tags)
        buffer = trial.metric_buffer()
        for step in (0, 2, 4):
            buffer.add({"test_loss/macro": 6.0 - step * (0.3 + 0.1 * rank)}, step=step)
        buffer.flush()
        trial.finish()
    sweep.log_metric("sweep_wall_s", 12.5)
    sweep.finish()
    return database


def test_screenshots_of_a_small_sweep(tmp_path: Path) -> None:
    pytest.importorskip("selenium", reason="needs Selenium (pip install selenium)")
    image = pytest.importorskip("PIL.Image", reason="needs Pillow to look at the screenshots")
    database = make_store(tmp_path / "store")
    out = tmp_path / "shots"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--store", str(database), "--out", str(out), "--experiment", "dynamics-ui-test"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for name in SHOTS:
        path = out / name
        assert path.is_file(), f"{name} missing; the script said:\n{result.stdout}"
        assert path.stat().st_size > 10_000, f"{name} is only {path.stat().st_size} bytes"
        with image.open(path) as picture:
            assert picture.size == (1440, 900), picture.size
            assert picture.convert("RGB").getcolors(maxcolors=32) is None, f"{name} has under 32 colours: blank?"
    assert not (out / "error.png").exists()
    said = {line.partition(":")[0]: line for line in result.stdout.splitlines()}
    assert "the sweep's link lands on the runs table" in said["02_runs.png"], result.stdout
    assert "3 of 3 child runs in sight" in said["04_runs_expanded.png"], result.stdout
    assert "['fft', 'nft', 'rt']" in said["05_runs_grouped.png"], result.stdout
    for order in ORDERS:
        assert f"'{order}'" in said["07_chart_metric_full.png"], result.stdout
