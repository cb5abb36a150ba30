"""`~` and environment variables in path-valued fields, expanded once, when the config is validated.

A field that takes a hub name or a local path (`models.*.pretrained`, `data.path`) needs no rule of its own:
a hub name (`meta-llama/Llama-2-7b`) holds neither a leading `~` nor a `$`, so it passes through untouched.
URLs (`s3://…`) are never expanded. An undefined variable is an error, not a literal `$VAR` folder.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

from pydantic import AfterValidator

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SQLITE = "sqlite:///"
# Keys of `data.options` that hold local files or folders (niv2 split_dir/split_files, flan_mini split_file,
# train_tasks/test_tasks) or a tokenizer name/path; other options are left as written.
_PATH_OPTION_SUFFIXES = ("_dir", "_file", "_files", "_path", "_tasks")


def expand_path(value: str) -> str:
    """`value` with `$VAR` / `${VAR}` and a leading `~` expanded, as a shell would; a URL is returned as is.

    Raises ValueError naming the variable when one is not set.
    """
    if "://" in value:
        return value

    def variable(match: re.Match[str]) -> str:
        name = match["plain"] if match["braced"] is None else match["braced"]
        if not _NAME.fullmatch(name):
            raise ValueError(f"'${{{name}}}' is not an environment variable name (in {value!r})")
        if name not in os.environ:
            raise ValueError(f"environment variable '{name}' is not set (in {value!r})")
        return os.environ[name]

    expanded = _VARIABLE.sub(variable, value)
    return os.path.expanduser(expanded) if value.startswith("~") else expanded


def _expand_uri(uri: str) -> str:
    """A tracking URI: `sqlite:///~/x.db` and plain paths expanded; server URLs (http://, databricks) kept."""
    if uri.startswith(_SQLITE):
        return _SQLITE + expand_path(uri.removeprefix(_SQLITE))
    return expand_path(uri)


def _expand_options(options: dict[str, Any]) -> dict[str, Any]:
    """A data source's options with the values of its path-named keys expanded (a string or a mapping of them)."""
    expanded = dict(options)
    for key, value in options.items():
        if not (key.endswith(_PATH_OPTION_SUFFIXES) or key == "tokenizer"):
            continue
        try:
            if isinstance(value, str):
                expanded[key] = expand_path(value)
            elif isinstance(value, dict):
                expanded[key] = {k: expand_path(v) if isinstance(v, str) else v for k, v in value.items()}
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
    return expanded


ExpandedPath = Annotated[str, AfterValidator(expand_path)]
ExpandedUri = Annotated[str, AfterValidator(_expand_uri)]
SourceOptions = Annotated[dict[str, Any], AfterValidator(_expand_options)]
