"""The base of every config section: unknown keys are errors, values are frozen once validated, and a boolean
never stands in for a number (pydantic's lax mode reads `true` as 1, so `lr: true` would train at lr 1.0).
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _members(annotation: Any) -> tuple[Any, ...]:
    """The types a value of `annotation` may have: unions flattened, `Annotated` metadata dropped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return tuple(member for arg in get_args(annotation) for member in _members(arg))
    return (annotation,)


def _takes_number_not_bool(annotation: Any) -> bool:
    """Whether `annotation` accepts an int or a float (or a numeric Literal) but no boolean."""
    numbers = booleans = False
    for member in _members(annotation):
        choices = get_args(member) if get_origin(member) is Literal else (member,)
        for choice in choices:
            if choice is bool or isinstance(choice, bool):
                booleans = True
            elif choice in (int, float) or isinstance(choice, int | float):
                numbers = True
    return numbers and not booleans


def _items(member: Any, value: Any) -> list[tuple[str, Any, Any]]:
    """(where, item type, item) for each item of a list, tuple or dict `value` that `member` describes."""
    origin, args = get_origin(member), get_args(member)
    if origin in (list, set, frozenset) and isinstance(value, list | tuple | set):
        return [(f"[{i}]", args[0], item) for i, item in enumerate(value)]
    if origin is tuple and isinstance(value, list | tuple):
        types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        return [(f"[{i}]", kind, item) for i, (kind, item) in enumerate(zip(types, value, strict=False))]
    if origin is dict and isinstance(value, dict):
        return [(f"[{key!r}]", args[1], item) for key, item in value.items()]
    return []


def _bool_for_number(annotation: Any, value: Any) -> tuple[str, bool] | None:
    """(where in `value`, '' = itself; the boolean) for a boolean where `annotation` wants a number, else None."""
    if isinstance(value, bool):
        return ("", value) if _takes_number_not_bool(annotation) else None
    for member in _members(annotation):
        for where, kind, item in _items(member, value):
            found = _bool_for_number(kind, item)
            if found is not None:
                return where + found[0], found[1]
    return None


class Section(BaseModel):
    """A config section (pydantic, frozen, `extra="forbid"`); each field documents itself in `description`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        # Not strict mode: ints for floats (3 → 3.0) and MLflow params read back as strings ("160") rely on lax.
        found = _bool_for_number(cls.model_fields[info.field_name].annotation, value)
        if found is None:
            return value
        where, boolean = found
        at = f" at {where}" if where else ""
        raise ValueError(f"expected a number{at}, got the boolean {boolean} (YAML reads yes/no/on/off as booleans)")
