"""The resolved config as YAML with each field's description beside it (`dynamics config show`).

Defaults and overrides applied, so a reader sees exactly what a sweep will run with and what each knob does.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

COMMENT_COLUMN = 48


def _scalar(value: Any) -> str:
    """A value on one line, in a form YAML reads back (JSON is YAML)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False, default=str)


def _line(indent: int, text: str, comment: str | None) -> str:
    line = "  " * indent + text
    if not comment:
        return line
    return f"{line.ljust(COMMENT_COLUMN)}  # {' '.join(comment.split())}"


def _section(model: BaseModel, indent: int) -> list[str]:
    lines = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            lines.append(_line(indent, f"{name}:", field.description or type(value).__doc__))
            lines += _section(value, indent + 1)
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            lines.append(_line(indent, f"{name}:", field.description))
            for key, entry in value.items():
                lines.append(_line(indent + 1, f"{key}:", type(entry).__doc__))
                lines += _section(entry, indent + 2)
        else:
            lines.append(_line(indent, f"{name}: {_scalar(value)}", field.description))
    return lines


def describe_config(config: BaseModel) -> str:
    """Every field of `config`, nested as in the YAML file, each with its value and its description."""
    return "\n".join(_section(config, 0))
