"""Config strictness: repeated YAML keys, booleans where numbers belong, `~`/`$VAR` in paths, a non-mapping file.

Run: `python -m pytest -q tests/config/test_config_strictness.py`
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from dynamics.config import ConfigError, SweepConfig, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
OFFLINE = REPO / "experiments" / "configs" / "offline.yaml"
CONFIGS = sorted((REPO / "experiments" / "configs").glob("*.yaml"))
MODEL_KEY = "tiny-2m"  # a builtin model of offline.yaml, where `models.*` fields are set


@pytest.fixture(scope="module")
def offline_raw() -> dict[str, Any]:
    return yaml.safe_load(OFFLINE.read_text(encoding="utf-8"))


def _error_of(raw: dict[str, Any], origin: str = "studies/x.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, origin=origin)
    return str(caught.value)


def _set(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `raw` with `dotted` set to `value`, creating the sections on the way."""
    raw = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return raw


# --- repeated keys ---------------------------------------------------------------------------------------


def test_duplicate_key_at_depth_2_names_file_both_lines_and_dotted_key(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "models:\n  tiny: {builtin: {hidden_size: 64}}\ntrain:\n  lr: 1.0e-3\n  epochs: 2\n  lr: 2.0e-3\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: line 6: duplicate key 'train.lr' (first at line 4)"


def test_duplicate_top_level_section_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("train: {lr: 1}\nmodels: {}\ntrain: {epochs: 2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 3: duplicate key 'train' \(first at line 1\)"):
        load_config(path)


def test_duplicate_key_deep_in_a_flow_mapping_and_a_list_is_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "models:\n  tiny-2m:\n    builtin: {hidden_size: 64, hidden_size: 128}\n"
        "data:\n  options:\n    pools:\n      - {a: 1, a: 2}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"line 3: duplicate key 'models\.tiny-2m\.builtin\.hidden_size'"):
        load_config(path)
    path.write_text("data:\n  options:\n    pools:\n      - {a: 1, a: 2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"duplicate key 'data\.options\.pools\[0\]\.a' \(first at line 4\)"):
        load_config(path)


def test_the_same_key_in_sibling_sections_is_not_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "models:\n  a: {pretrained: x, tokenizer: x}\n  b: {pretrained: y, tokenizer: y}\ngrid: {model: [a, b]}\n",
        encoding="utf-8",
    )
    assert set(load_config(path).models) == {"a", "b"}


def test_a_merge_key_may_be_overridden_by_an_explicit_one(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "models:\n  a: &a {pretrained: x, tokenizer: t}\n  b: {<<: *a, tokenizer: u}\ngrid: {model: [a, b]}\n",
        encoding="utf-8",
    )
    assert load_config(path).models["b"].tokenizer == "u"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_read_the_same_as_plain_yaml(path: Path) -> None:
    """No shipped config repeats a key, and the strict reader changes none of their values."""
    from dynamics.config.strict_yaml import read_yaml

    text = path.read_text(encoding="utf-8")
    assert read_yaml(text, origin=str(path)) == yaml.safe_load(text)


def test_invalid_yaml_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("models: {}\ntrain: {lr: 1e-4\ngrid: [\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line ") and "not valid YAML" in message


def test_exponent_without_a_dot_is_a_float(tmp_path: Path, offline_raw: dict[str, Any]) -> None:
    path = tmp_path / "exp.yaml"
    text = OFFLINE.read_text(encoding="utf-8").replace("lr: 3.0e-3", "lr: 5e-4")
    assert "lr: 5e-4" in text
    path.write_text(text, encoding="utf-8")
    assert load_config(path).train.lr == pytest.approx(5e-4)


# --- booleans are not numbers ----------------------------------------------------------------------------


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _numeric(annotation: Any) -> bool:
    choices = [c for m in _members(annotation) for c in (get_args(m) if get_origin(m) is Literal else [m])]
    if any(c is bool or isinstance(c, bool) for c in choices):
        return False
    return any(c in (int, float) or isinstance(c, int | float) for c in choices)


def _boolean_in_place_of_a_number(annotation: Any) -> Any:
    """A value shaped like `annotation` with a boolean where it takes a number, or None if it takes none."""
    if _numeric(annotation):
        return True
    for member in _members(annotation):
        origin, args = get_origin(member), get_args(member)
        if origin is list and _numeric(args[0]):
            return [True]
        if origin is tuple and all(_numeric(arg) for arg in args):
            return [True] * len(args)
        if origin is dict and _numeric(args[1]):
            return {"ethics": True}
    return None


def _sections(annotation: Any) -> list[type[BaseModel]]:
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _numeric_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, a boolean-bearing value) for every field of the schema that takes numbers."""
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        bad = _boolean_in_place_of_a_number(field.annotation)
        if bad is not None:
            yield dotted, bad
        for section in _sections(field.annotation):
            yield from _numeric_fields(section, f"{dotted}.")
        if get_origin(field.annotation) is dict:
            for section in _sections(get_args(field.annotation)[1]):
                yield from _numeric_fields(section, f"{dotted}.{MODEL_KEY}.")


NUMERIC_FIELDS = dict(_numeric_fields(SweepConfig))


def test_the_discovery_finds_numbers_in_every_section() -> None:
    for dotted in (
        "train.lr",
        "train.zero_stage",
        "train.betas",
        "scaling.num_workers",
        "scaling.cpus_per_worker",
        "arrange.tma_rounds",
        "grid.volume",
        "grid.seed",
        "data.sample.per_train_task",
        "data.recipe.caps",
        f"models.{MODEL_KEY}.builtin.hidden_size",
    ):
        assert dotted in NUMERIC_FIELDS
    assert not {"scaling.use_gpu", "data.lenient", "name"} & set(NUMERIC_FIELDS)


@pytest.mark.parametrize("dotted", sorted(NUMERIC_FIELDS))
def test_a_boolean_is_never_a_number(offline_raw: dict[str, Any], dotted: str) -> None:
    message = _error_of(_set(offline_raw, dotted, NUMERIC_FIELDS[dotted]))
    lines = [line for line in message.splitlines() if line.startswith(f"studies/x.yaml: key '{dotted}': ")]
    assert lines, message
    assert "boolean" in lines[0] or "got True" in lines[0]


def test_a_boolean_in_a_list_names_its_position(offline_raw: dict[str, Any]) -> None:
    message = _error_of(_set(offline_raw, "grid.volume", [160, True]))
    assert message == (
        "studies/x.yaml: key 'grid.volume': expected a number at [1], got the boolean True "
        "(YAML reads yes/no/on/off as booleans)"
    )


def test_yes_in_a_yaml_file_is_not_a_volume(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    text = OFFLINE.read_text(encoding="utf-8").replace("volume: [160]", "volume: [yes]")
    assert "volume: [yes]" in text
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'grid\.volume': expected a number at \[0\]"):
        load_config(path)


def test_numbers_and_booleans_still_go_where_they_belong(offline_raw: dict[str, Any]) -> None:
    raw = _set(_set(offline_raw, "train.lr", 1), "scaling.cpus_per_worker", 2)
    raw = _set(_set(raw, "scaling.use_gpu", True), "data.lenient", True)
    config = parse_config(raw)
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.scaling.cpus_per_worker == 2.0
    assert config.scaling.use_gpu is True and config.data.lenient is True
    assert parse_config(_set(offline_raw, "train.lr", "1e-4")).train.lr == pytest.approx(1e-4)


def test_a_boolean_in_data_options_is_left_to_the_source(offline_raw: dict[str, Any]) -> None:
    raw = _set(offline_raw, "data.options", {"per_train_task": 40, "keep_system": True})
    assert parse_config(raw).data.options["keep_system"] is True


# --- ~ and environment variables in paths ----------------------------------------------------------------


@pytest.fixture
def data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DYNAMICS_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("DYNAMICS_UNSET", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "dotted",
    [
        "workdir",
        "storage_path",
        "data.path",
        "data.test_source.path",
        f"models.{MODEL_KEY}.tokenizer",
        "arrange.embedding_model",
    ],
)
def test_home_and_variables_are_expanded_in_path_fields(
    offline_raw: dict[str, Any], data_home: Path, dotted: str
) -> None:
    raw = _set(offline_raw, dotted, "~/runs/${DYNAMICS_DATA}/x")
    if dotted.startswith("data.test_source"):
        raw["data"]["test_source"]["source"] = "niv2"
    config = parse_config(raw)
    value: Any = config
    for part in dotted.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    assert value == f"{data_home}/home/runs/{data_home}/data/x"


def test_pretrained_from_a_variable_is_expanded(offline_raw: dict[str, Any], data_home: Path) -> None:
    raw = _set(offline_raw, f"models.{MODEL_KEY}", {"pretrained": "$DYNAMICS_DATA/llama"})
    assert parse_config(raw).models[MODEL_KEY].pretrained == f"{data_home}/data/llama"


@pytest.mark.parametrize("name", ["meta-llama/Llama-2-7b", "gpt2", "huggyllama/llama-7b"])
def test_a_hub_name_is_not_touched(offline_raw: dict[str, Any], data_home: Path, name: str) -> None:
    raw = _set(offline_raw, f"models.{MODEL_KEY}", {"pretrained": name, "tokenizer": name})
    model = parse_config(raw).models[MODEL_KEY]
    assert model.pretrained == name and model.tokenizer == name
    assert parse_config(_set(offline_raw, "data.path", "allenai/natural-instructions")).data.path == (
        "allenai/natural-instructions"
    )


def test_a_url_is_not_expanded(offline_raw: dict[str, Any], data_home: Path) -> None:
    raw = _set(offline_raw, "storage_path", "s3://bucket/$DYNAMICS_UNSET/runs")
    assert parse_config(raw).storage_path == "s3://bucket/$DYNAMICS_UNSET/runs"
    raw = _set(offline_raw, "tracking.uri", "http://127.0.0.1:5000")
    assert parse_config(raw).tracking.uri == "http://127.0.0.1:5000"


def test_a_sqlite_tracking_uri_under_home_is_expanded(offline_raw: dict[str, Any], data_home: Path) -> None:
    raw = _set(offline_raw, "tracking.uri", "sqlite:///~/mlflow.db")
    assert parse_config(raw).tracking.uri == f"sqlite:///{data_home}/home/mlflow.db"


def test_path_options_of_a_source_are_expanded(offline_raw: dict[str, Any], data_home: Path) -> None:
    options = {"split_dir": "~/splits", "split_files": {"test": "$DYNAMICS_DATA/t.txt"}, "max_turns": 2}
    raw = _set(_set(offline_raw, "data.options", options), "data.source", "niv2")
    assert parse_config(raw).data.options == {
        "split_dir": f"{data_home}/home/splits",
        "split_files": {"test": f"{data_home}/data/t.txt"},
        "max_turns": 2,
    }


@pytest.mark.parametrize("value", ["$DYNAMICS_UNSET/runs", "~/x/${DYNAMICS_UNSET}"])
def test_an_undefined_variable_names_the_key_and_the_variable(
    offline_raw: dict[str, Any], data_home: Path, value: str
) -> None:
    message = _error_of(_set(offline_raw, "workdir", value))
    assert message == f"studies/x.yaml: key 'workdir': environment variable 'DYNAMICS_UNSET' is not set (in {value!r})"


def test_an_undefined_variable_in_an_option_names_the_option(offline_raw: dict[str, Any], data_home: Path) -> None:
    message = _error_of(_set(offline_raw, "data.options", {"split_file": "$DYNAMICS_UNSET/keys.json"}))
    assert "key 'data.options': split_file: environment variable 'DYNAMICS_UNSET' is not set" in message


def test_a_malformed_variable_is_an_error(offline_raw: dict[str, Any], data_home: Path) -> None:
    message = _error_of(_set(offline_raw, "data.path", "${not a name}/x"))
    assert "key 'data.path'" in message and "not an environment variable name" in message


def test_expanded_config_validates_again_unchanged(offline_raw: dict[str, Any], data_home: Path) -> None:
    config = parse_config(_set(offline_raw, "workdir", "~/runs"))
    assert os.path.isabs(config.workdir)
    assert parse_config(config.model_dump()) == config


# --- a file that is not a mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just words\n", "str"), ("0\n", "int")])
def test_a_non_mapping_file_with_overrides_names_the_file(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"train.lr": 1e-4})
    assert str(caught.value) == f"{path}: expected a mapping at the top level, got {kind}"


def test_a_folder_given_as_the_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path)
