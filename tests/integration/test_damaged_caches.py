"""Each cache kind truncated in turn: the next run names the file, moves it aside, rebuilds it byte for byte
and succeeds (data Parquet, embeddings, an arrangement's order.parquet, a saved built-in model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dynamics.cli import main

TINY = {"builtin": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}}


def _rows(split: str, tasks: list[str], per_task: int) -> list[dict]:
    return [
        {
            "id": f"{task}/{i}",
            "source": "local",
            "task": task,
            "category": task,
            "split": split,
            "messages": [
                {"role": "user", "content": f"{task} question {i}: what is {i} plus {len(task)}?"},
                {"role": "assistant", "content": f"{i + len(task)}"},
            ],
            "references": [f"{i + len(task)}"],
        }
        for task in tasks
        for i in range(per_task)
    ]


@pytest.fixture
def study(tmp_path: Path) -> Path:
    data = tmp_path / "data.jsonl"
    rows = _rows("train", ["add", "sum", "plus", "total"], 12) + _rows("test", ["count", "tally"], 4)
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    config = {
        "name": "damage",
        "workdir": str(tmp_path / "work"),
        "data": {"source": "canonical", "path": str(data)},
        "arrange": {"num_actors": 1, "cpus_per_actor": 0.5},
        "models": {"tiny": TINY},
        "train": {"global_batch_size": 16, "micro_batch_size": 8, "max_length": 64},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
        "tracking": {"experiment": "damage"},
        "grid": {"volume": [32], "model": ["tiny"], "permutation": ["nft"], "seed": [0]},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


ENTRIES = {
    "data": "cache/data/*.parquet",
    "embeddings": "cache/embeddings/*.npy",
    "arrangement": "arrangements/*/order.parquet",
    "model": "models/tiny-*/model.safetensors",
}


def test_each_truncated_cache_is_named_rebuilt_and_the_run_succeeds(ray_cluster, study, caplog, capsys):
    work = study.parent / "work"
    assert main(["arrange", "--config", str(study)]) == 0
    originals = {}
    for kind, pattern in ENTRIES.items():
        (entry,) = [path for path in work.glob(pattern) if "damaged" not in path.parts]
        originals[kind] = (entry, entry.read_bytes())

    for kind, (entry, original) in originals.items():
        entry.write_bytes(original[: len(original) // 2])  # a copy or a disk write cut short
        caplog.clear()
        command = "sweep" if kind == "model" else "arrange"  # the model is read by training
        # Embeddings are read only when an arrangement is missing: ask for one more order.
        extra = ["--set", "grid.permutation=[nft,fft]"] if kind == "embeddings" else []
        with caplog.at_level("WARNING"):
            assert main([command, "--config", str(study), *extra]) == 0, capsys.readouterr().err[-2000:]
        warnings = [r.getMessage() for r in caplog.records if "damaged cache entry" in r.getMessage()]
        assert len(warnings) == 1, (kind, warnings)
        named = entry.parent if kind in ("arrangement", "model") else entry  # folders are moved whole
        assert str(named) in warnings[0], (kind, warnings[0])
        assert entry.read_bytes() == original, kind  # rebuilt byte for byte
        moved = list((named.parent / "damaged").iterdir())
        assert any(path.name.startswith(named.name) for path in moved), (kind, moved)
