"""Reading a sweep config: YAML, dotted-key overrides, and errors that name the file and the key.

An unknown key or a wrong type fails with the file, the dotted key and (for unknown keys) the closest valid key;
a repeated key with the file and both lines (`dynamics.config.strict_yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from dynamics.config.errors import ConfigError
from dynamics.config.schema import SweepConfig
from dynamics.config.strict_yaml import read_yaml
from dynamics.names import closest

__all__ = ["ConfigError", "load_config", "parse_config"]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The config class inside an annotation such as `X`, `X | None` or `dict[str, X]`."""
    candidates = [annotation, *get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _known_keys(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """Valid field names at `path` inside `model`, for 'did you mean' hints."""
    current: type[BaseModel] | None = model
    parts = iter(path)
    for part in parts:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            return []
        annotation = field.annotation
        if get_origin(annotation) is dict:
            next(parts, None)  # the user's own key (e.g. a model name), not a field
            annotation = get_args(annotation)[1]
        current = _model_in(annotation)
    return list(current.model_fields) if current is not None else []


def _describe(error: dict[str, Any], origin: str) -> str:
    location = tuple(error["loc"])
    dotted = ".".join(str(part) for part in location) or "<root>"
    if error["type"] == "extra_forbidden":
        known = _known_keys(SweepConfig, location[:-1])
        close = closest(location[-1], known)
        hint = f"; did you mean '{close}'?" if close else f"; valid keys: {', '.join(known)}"
        return f"{origin}: unknown key '{dotted}'{hint}"
    if error["type"] == "missing":
        return f"{origin}: missing key '{dotted}'"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error":  # a cross-field check: its message names the keys involved
        return f"{origin}: key '{dotted}': {message}" if location else f"{origin}: {message}"
    return f"{origin}: key '{dotted}': {error['msg']} (got {error.get('input')!r})"


def parse_config(raw: dict[str, Any], origin: str = "<config>") -> SweepConfig:
    """Validate a mapping as a SweepConfig; raise ConfigError listing every problem with its key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as error:
        lines = [_describe(e, origin) for e in error.errors()]
        raise ConfigError("\n".join(lines)) from None


OFFLINE_KEY = "offline"  # a config's offline variant: dotted keys set over it, as `--set` does


def load_config(path: str | Path, overrides: dict[str, Any] | None = None, offline: bool = False) -> SweepConfig:
    """Read a YAML config file, apply dotted-key overrides ({"train.lr": 1e-4}) and validate. With `offline`, the
    file's `offline:` mapping (its offline variant: the same experiment on built-in data and tiny models) is set
    first, key by key, then the overrides; without it that mapping is left out."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file: {error}") from None
    raw = read_yaml(text, origin=str(path))
    if raw is None:  # an empty file: every section at its defaults (and `models` reported missing)
        raw = {}
    if not isinstance(raw, dict):  # before the overrides, which need a mapping to write into
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    variant = raw.pop(OFFLINE_KEY, None)
    origin = str(path)
    if offline:
        if not isinstance(variant, dict) or not variant:
            raise ConfigError(f"{path}: --offline: the config has no '{OFFLINE_KEY}:' mapping (its offline variant)")
        origin = f"{path} (offline variant)"
        for dotted, value in variant.items():
            _set_dotted(raw, str(dotted), value, origin=f"{origin}: key '{OFFLINE_KEY}'")
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value, origin=str(path))
    return parse_config(raw, origin=origin)


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    if not all(dotted.split(".")):
        raise ConfigError(f"{origin}: override {dotted!r}: a dotted key needs a name between each '.'")
    node = raw
    *parents, leaf = dotted.split(".")
    for depth, part in enumerate(parents):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            prefix = ".".join(parents[: depth + 1])
            raise ConfigError(f"{origin}: override '{dotted}': '{prefix}' is a value, not a section")
        node = child
    node[leaf] = value
