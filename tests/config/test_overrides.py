"""`--set KEY=VALUE` overrides read as users write them (dynamics.config.overrides), and their use by load_config
and the command line.

Run: `python -m pytest -q tests/config/test_overrides.py`
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamics.config import ConfigError, load_config, parse_overrides
from dynamics.config.overrides import parse_value

REPO = Path(__file__).resolve().parents[2]
OFFLINE = REPO / "experiments" / "configs" / "offline.yaml"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("[tma_min[0:5], nft]", ["tma_min[0:5]", "nft"]),
        ("[tma_min[0:5]]", ["tma_min[0:5]"]),
        ("tma_min[0:5]", "tma_min[0:5]"),
        ("[nft, fft, rt]", ["nft", "fft", "rt"]),
        ("[tma_min[0:5], 3, 'a, b', \"c]\", null]", ["tma_min[0:5]", 3, "a, b", "c]", None]),
        ("[[x[1], y], z]", [["x[1]", "y"], "z"]),
        ("[don't, tma_max[1:3],]", ["don't", "tma_max[1:3]"]),
        ("[]", []),
        ("1e-4", 1e-4),
        ("3.0e-3", 3e-3),
        ("16", 16),
        ("true", True),
        ("null", None),
        ("", None),
        ("[0, 1, 2]", [0, 1, 2]),
        ("{pools: [curated/full, curated/test]}", {"pools": ["curated/full", "curated/test"]}),
        ("sqlite:///runs/mlflow.db", "sqlite:///runs/mlflow.db"),
        ("run #3", "run #3"),
        ("#3", "#3"),
        ("a: b #c", "a: b #c"),
        ("[tma_min[0:5]", "[tma_min[0:5]"),
        ("[a], [b]", "[a], [b]"),
    ],
)
def test_values_are_read_as_written(text: str, value: object) -> None:
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_pairs_become_dotted_keys() -> None:
    assert parse_overrides(["grid.permutation=[tma_min[0:5], nft]", "train.lr=1e-4", "name=a=b"], lenient=False) == {
        "grid.permutation": ["tma_min[0:5]", "nft"],
        "train.lr": 1e-4,
        "name": "a=b",  # only the first '=' splits
    }


def test_lenient_is_data_lenient_and_a_pair_may_override_it() -> None:
    assert parse_overrides([], lenient=True) == {"data.lenient": True}
    assert parse_overrides(["data.lenient=false"], lenient=True) == {"data.lenient": False}


@pytest.mark.parametrize(
    ("pair", "problem"),
    [
        ("train.lr", "expected KEY=VALUE"),
        ("=1e-4", "empty key"),
        ("  =1", "empty key"),
        ("train..lr=1", "has an empty part"),
        (".lr=1", "has an empty part"),
    ],
)
def test_a_malformed_pair_is_a_config_error_naming_it(pair: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_overrides([pair], lenient=False)
    assert str(caught.value).startswith(f"--set {pair!r}: ") and problem in str(caught.value)


def test_a_repeated_key_inside_a_value_is_named_from_the_override() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_overrides(["train={lr: 1, lr: 2}"], lenient=False)
    assert str(caught.value) == "--set 'train={lr: 1, lr: 2}': duplicate key 'train.lr'"


def test_a_permutation_with_rounds_reaches_the_config() -> None:
    config = load_config(OFFLINE, parse_overrides(["grid.permutation=[tma_min[0:5], nft]"], lenient=False))
    assert config.grid.permutation == ["tma_min[0:5]", "nft"]
    assert parse_overrides(["grid.permutation=tma_min[0:5]"], lenient=False) == {"grid.permutation": "tma_min[0:5]"}


def test_yes_is_not_a_volume() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(OFFLINE, parse_overrides(["grid.volume=[yes]"], lenient=False))
    assert f"{OFFLINE}: key 'grid.volume': expected a number at [0], got the boolean True" in str(caught.value)


# --- command line ----------------------------------------------------------------------------------------


def test_cli_set_takes_a_permutation_with_rounds(capsys: pytest.CaptureFixture[str]) -> None:
    from dynamics.cli import main

    assert main(["config", "show", str(OFFLINE), "--set", "grid.permutation=[tma_min[0:5], nft]"]) == 0
    lines = capsys.readouterr().out.splitlines()
    permutation = next(line for line in lines if line.strip().startswith("permutation:"))
    assert permutation.split("#")[0].strip() == 'permutation: ["tma_min[0:5]", "nft"]'


@pytest.mark.parametrize(
    ("pair", "named"),
    [("grid.volume=[yes]", "grid.volume"), ("train.lr=true", "train.lr"), ("=3", "'=3'")],
)
def test_cli_set_problems_exit_2_naming_the_key(pair: str, named: str, capsys: pytest.CaptureFixture[str]) -> None:
    from dynamics.cli import main

    assert main(["config", "show", str(OFFLINE), "--set", pair]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and named in err
