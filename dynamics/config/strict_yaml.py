"""YAML for config files: PyYAML's safe loader, strict where its silence would hide a mistake.

A repeated key keeps only its last value in plain PyYAML, so `lr` written twice trains with whichever came
second; here it is an error naming both lines. `1e-4` is a float (YAML 1.2), not PyYAML's string.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from dynamics.config.errors import ConfigError

_MERGE = "tag:yaml.org,2002:merge"
# YAML 1.2 floats PyYAML (YAML 1.1) misses: an exponent without a dot, such as 1e-4 or 5E3.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class DuplicateKeyError(ConstructorError):
    """A mapping names `key` (dotted from the document's root) twice: at `line` and first at `first_line`."""

    def __init__(self, key: str, line: int, first_line: int):
        super().__init__(problem=f"duplicate key '{key}' (first at line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings reject repeated keys, naming each by its dotted path below `root`."""

    def __init__(self, stream: str, root: str = ""):
        super().__init__(stream)
        self._paths: dict[int, str] = {}  # id(node) → dotted path, set by the node's parent before it is built
        self._root = root

    def _path_of(self, node: Node) -> str:
        return self._paths.get(id(node), self._root)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        prefix = self._path_of(node)
        first_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:  # `<<: *base` keys may be overridden by explicit ones
                continue
            key = self.construct_object(key_node, deep=True)
            dotted = f"{prefix}.{key}" if prefix else str(key)
            self._paths[id(value_node)] = dotted
            line = key_node.start_mark.line + 1
            try:
                first = first_lines.get(key)
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if first is not None:
                raise DuplicateKeyError(dotted, line, first)
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_sequence(self, node: SequenceNode, deep: bool = False) -> list[Any]:
        prefix = self._path_of(node)
        for index, child in enumerate(node.value):
            self._paths[id(child)] = f"{prefix}[{index}]"
        return super().construct_sequence(node, deep=deep)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def read_yaml(text: str, origin: str) -> Any:
    """The document in `text`; a ConfigError (one line, naming `origin` and the line) if it is not clean YAML."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    except DuplicateKeyError as error:
        raise ConfigError(
            f"{origin}: line {error.line}: duplicate key '{error.key}' (first at line {error.first_line})"
        ) from None
    except yaml.MarkedYAMLError as error:
        raise ConfigError(f"{origin}: {_one_line(error)}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{origin}: not valid YAML: {' '.join(str(error).split())}") from None
    finally:
        loader.dispose()


def _one_line(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = f" ({error.context})" if error.context else ""
    return f"{where}not valid YAML: {error.problem}{context}"
