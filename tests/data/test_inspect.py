"""`dynamics data inspect`: counts, token-length percentiles and the cache path, on the real NIV2 sample."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dynamics.cli import main

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "niv2-sample").is_dir(), reason=f"no NIV2 sample at {SHARED}")
def test_inspect_prints_counts_lengths_and_cache_then_hits_the_cache(tmp_path: Path, capsys) -> None:
    raw = yaml.safe_load((REPO / "experiments" / "configs" / "offline.yaml").read_text())
    raw["workdir"] = str(tmp_path / "work")
    raw["data"] = {"source": "niv2", "path": str(SHARED / "niv2-sample")}
    config = tmp_path / "niv2.yaml"
    config.write_text(yaml.safe_dump(raw))

    assert main(["data", "inspect", str(config)]) == 0
    first = capsys.readouterr().out
    assert "rows: 220" in first and "per split: test 60, train 160" in first
    assert "train task1146_country_capital: 20" in first
    cache_line = next(line for line in first.splitlines() if line.startswith("cache: "))
    assert Path(cache_line.removeprefix("cache: ")).is_file()
    percentile_line = next(line for line in first.splitlines() if line.strip().startswith("train: "))
    p50, p90, p99, longest = (int(v) for v in percentile_line.split("(")[0].split(":")[1].split("/"))
    assert 0 < p50 <= p90 <= p99 <= longest

    assert main(["data", "inspect", str(config)]) == 0
    assert "(cache hit)" in capsys.readouterr().out
