"""Tests for reading the typed sweep config (dynamics.config.loading) and its use by the command line.

Run: `python -m pytest -q tests/config/test_config_loading.py`
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from dynamics.config import ConfigError, SweepConfig, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
OFFLINE = REPO / "experiments" / "configs" / "offline.yaml"


@pytest.fixture(scope="module")
def offline_raw() -> dict[str, Any]:
    return yaml.safe_load(OFFLINE.read_text(encoding="utf-8"))


def _write(tmp_path: Path, raw: Any, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _error_of(raw: dict[str, Any], origin: str = "studies/x.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, origin=origin)
    return str(caught.value)


# --- the shipped offline config ------------------------------------------------------------------------


def test_offline_config_loads_with_a_12_point_grid_of_4_seeds() -> None:
    config = load_config(OFFLINE)
    assert isinstance(config, SweepConfig)
    assert config.grid.volume == [160]
    assert config.grid.model == ["tiny-2m"]
    assert config.grid.permutation == ["nft", "fft", "rt"]
    assert config.grid.seed == [0, 1, 2, 3]
    points = {tuple(point.values()) for point in config.grid.raw_points()}
    assert len(points) == 12
    assert (None, 160, "tiny-2m", "rt", 3) in points


def test_offline_config_values_come_from_the_file_not_defaults() -> None:
    config = load_config(OFFLINE)
    assert config.name == "offline-study"
    assert config.train.lr == pytest.approx(3.0e-3)
    assert config.train.global_batch_size == 16 and config.train.micro_batch_size == 8
    assert config.scaling.num_workers == 2 and config.scaling.max_concurrent_trials == 2
    assert config.models["tiny-2m"].builtin is not None
    assert config.models["tiny-2m"].builtin.hidden_size == 256
    assert config.models["tiny-0.5m"].pretrained is None
    assert config.tracking.experiment == "dynamics-offline"


def test_parse_config_matches_load_config(offline_raw: dict[str, Any]) -> None:
    assert parse_config(offline_raw, origin=str(OFFLINE)) == load_config(OFFLINE)


# --- unknown keys ----------------------------------------------------------------------------------------


def test_unknown_top_level_key_names_file_key_and_closest(offline_raw: dict[str, Any], tmp_path: Path) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["trian"] = {"lr": 1e-4}
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "'trian'" in message
    assert "did you mean 'train'" in message


def test_unknown_nested_key_names_dotted_key_and_closest(offline_raw: dict[str, Any], tmp_path: Path) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["train"]["lrr"] = 1e-4
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "train.lrr" in message
    assert "did you mean 'lr'" in message


def test_unknown_key_without_a_close_match_lists_valid_keys(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["scaling"]["zzzzzz"] = 1
    message = _error_of(raw)
    assert "scaling.zzzzzz" in message
    assert "valid keys:" in message
    for key in ("num_workers", "use_gpu", "cpus_per_worker", "max_concurrent_trials"):
        assert key in message


def test_unknown_key_inside_a_model_entry_offers_the_closest_key(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["models"]["tiny-2m"]["builtin"]["hidden_sise"] = 64
    message = _error_of(raw)
    assert "models.tiny-2m.builtin.hidden_sise" in message
    assert "did you mean 'hidden_size'" in message


def test_every_problem_is_reported_at_once(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["train"]["lrr"] = 1e-4
    raw["grid"]["seeds"] = [1]
    lines = _error_of(raw).splitlines()
    assert len(lines) == 2
    assert any("train.lrr" in line for line in lines)
    assert any("grid.seeds" in line and "did you mean 'seed'" in line for line in lines)


# --- wrong types and values ------------------------------------------------------------------------------


def test_wrong_scalar_type_names_dotted_key_and_value(offline_raw: dict[str, Any], tmp_path: Path) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["train"]["global_batch_size"] = "big"
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "train.global_batch_size" in message
    assert "'big'" in message


def test_wrong_list_item_type_names_dotted_key(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["grid"]["volume"] = ["abc"]
    message = _error_of(raw)
    assert "grid.volume" in message
    assert "'abc'" in message


def test_non_positive_volume_is_rejected(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["grid"]["volume"] = [160, 0]
    message = _error_of(raw)
    assert "grid.volume" in message and ">= 1" in message


def test_literal_field_rejects_unknown_choice(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["train"]["schedule"] = "exponential"
    message = _error_of(raw)
    assert "train.schedule" in message and "'exponential'" in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_models_is_required(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert "missing key 'models'" in str(caught.value)


# --- cross-field checks ----------------------------------------------------------------------------------


def test_grid_model_must_be_a_key_of_models(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["grid"]["model"] = ["tiny-0.5m", "llama-70b"]
    message = _error_of(raw)
    assert "grid.model" in message
    assert "'llama-70b'" in message


def test_global_batch_must_divide_into_workers_times_micro_batch(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    # 24 is a multiple of micro batch 8 but not of 2 workers × 8.
    raw["train"]["global_batch_size"] = 24
    message = _error_of(raw)
    assert "train.global_batch_size (24)" in message
    assert "= 16" in message


def test_global_batch_must_be_a_multiple_of_micro_batch(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["train"]["global_batch_size"] = 12
    raw["scaling"]["num_workers"] = 1
    message = _error_of(raw)
    assert "train" in message and "multiple of micro_batch_size" in message


def test_divisible_geometry_is_accepted(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["train"]["global_batch_size"] = 48
    raw["train"]["micro_batch_size"] = 4
    raw["scaling"]["num_workers"] = 3
    config = parse_config(raw)
    assert config.train.global_batch_size == 48


@pytest.mark.parametrize(
    "entry",
    [
        {
            "builtin": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2},
            "pretrained": "gpt2",
        },
        {},
        {"tokenizer": "gpt2"},
    ],
    ids=["both", "neither", "tokenizer-only"],
)
def test_model_needs_exactly_one_of_builtin_or_pretrained(offline_raw: dict[str, Any], entry: dict) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["models"]["tiny-2m"] = entry
    message = _error_of(raw)
    assert "models.tiny-2m" in message
    assert "exactly one of 'builtin' or 'pretrained'" in message


def test_pretrained_model_alone_is_accepted(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["models"]["tiny-2m"] = {"pretrained": "/models/llama"}
    config = parse_config(raw)
    assert config.models["tiny-2m"].pretrained == "/models/llama"
    assert config.models["tiny-2m"].builtin is None


def test_builtin_heads_must_divide_hidden_size(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw["models"]["tiny-2m"]["builtin"]["num_attention_heads"] = 3
    message = _error_of(raw)
    assert "models.tiny-2m.builtin" in message
    assert "divisible by num_attention_heads" in message


# --- file problems ---------------------------------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert "not found" in str(caught.value)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("train: {lr: 1e-4\ngrid: [\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert "not valid YAML" in str(caught.value)


# --- overrides -------------------------------------------------------------------------------------------


def test_overrides_replace_nested_values() -> None:
    config = load_config(OFFLINE, {"train.lr": 1e-4, "grid.seed": [0, 1, 2], "name": "renamed"})
    assert config.train.lr == pytest.approx(1e-4)
    assert config.grid.seed == [0, 1, 2]
    assert config.name == "renamed"
    # Untouched siblings keep the file's values.
    assert config.train.global_batch_size == 16
    assert config.grid.volume == [160]


def test_override_can_create_a_section_the_file_omits(offline_raw: dict[str, Any], tmp_path: Path) -> None:
    raw = copy.deepcopy(offline_raw)
    del raw["tracking"]
    path = _write(tmp_path, raw)
    config = load_config(path, {"tracking.uri": "sqlite:///x.db"})
    assert config.tracking.uri == "sqlite:///x.db"
    assert config.tracking.experiment == "dynamics"


def test_override_of_unknown_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(OFFLINE, {"train.lrr": 1e-4})
    assert str(OFFLINE) in str(caught.value)
    assert "train.lrr" in str(caught.value) and "did you mean 'lr'" in str(caught.value)


def test_override_is_validated_like_the_file() -> None:
    with pytest.raises(ConfigError, match="train.global_batch_size"):
        load_config(OFFLINE, {"train.global_batch_size": "big"})


def test_config_is_frozen() -> None:
    config = load_config(OFFLINE)
    with pytest.raises(ValueError):
        config.train.lr = 1.0  # type: ignore[misc]


# --- command line ----------------------------------------------------------------------------------------


def test_cli_sweep_with_unknown_key_exits_2_before_ray(
    offline_raw: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], no_ray: None
) -> None:
    from dynamics.cli import main

    raw = copy.deepcopy(offline_raw)
    raw["train"]["lrr"] = 1e-4
    raw["workdir"] = str(tmp_path / "work")
    path = _write(tmp_path, raw)
    assert main(["sweep", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "config error" in err
    assert str(path) in err
    assert "train.lrr" in err and "did you mean 'lr'" in err
    assert not (tmp_path / "work").exists()


def test_entry_point_fails_fast_on_a_bad_type_without_starting_ray(offline_raw: dict[str, Any], tmp_path: Path) -> None:
    """The user's own command, in a fresh process: exit 2, the key named, no Ray cluster started."""
    import subprocess
    import sys
    import time

    raw = copy.deepcopy(offline_raw)
    raw["train"]["global_batch_size"] = "big"
    raw["workdir"] = str(tmp_path / "work")
    path = _write(tmp_path, raw)
    sweep = REPO / "experiments" / "sweep.py"
    started = time.perf_counter()
    command = [sys.executable, str(sweep), "--config", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "train.global_batch_size" in done.stderr and str(path) in done.stderr
    assert "Ray instance" not in done.stdout + done.stderr
    assert time.perf_counter() - started < 60
    assert not (tmp_path / "work").exists()


def test_cli_set_override_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dynamics.cli import main

    assert main(["sweep", "--config", str(OFFLINE), "--set", "grid.volume=[abc]"]) == 2
    assert "grid.volume" in capsys.readouterr().err


def test_cli_set_without_equals_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    from dynamics.cli import main

    assert main(["sweep", "--config", str(OFFLINE), "--set", "train.lr"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("rounds", [[3, 3], [5, 2], [-1, 4], [0, 1, 2]])
def test_tma_rounds_must_be_a_non_empty_range(offline_raw: dict[str, Any], rounds: list[int]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw.setdefault("arrange", {})["tma_rounds"] = rounds
    message = _error_of(raw)
    assert "arrange.tma_rounds" in message and "0 <= i < j" in message


def test_cuda_embedding_device_needs_gpus(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw.setdefault("arrange", {})["device"] = "cuda"
    assert "gpus_per_actor > 0" in _error_of(raw)
    raw["arrange"]["gpus_per_actor"] = 1
    assert parse_config(raw, origin="x.yaml").arrange.embedding_device == "cuda"


def test_unknown_md_search_is_rejected(offline_raw: dict[str, Any]) -> None:
    raw = copy.deepcopy(offline_raw)
    raw.setdefault("arrange", {})["md_search"] = "annoy"
    message = _error_of(raw)
    assert "arrange.md_search" in message and "'annoy'" in message
