"""`--set KEY=VALUE` overrides, each value read the way its user wrote it.

A value is YAML when it reads cleanly as YAML (`1e-4`, `[0, 1]`, `{pools: [curated/full]}`, `null`). A list
YAML's flow syntax cannot hold, such as `[tma_min[0:5], nft]`, is split on its top-level commas and each item
read the same way; anything else is the plain string (`tma_min[0:5]`, `run #3`).

    parse_overrides(["grid.permutation=[tma_min[0:5], nft]"], lenient=False)
    # {"grid.permutation": ["tma_min[0:5]", "nft"]}
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from dynamics.config.errors import ConfigError
from dynamics.config.strict_yaml import DuplicateKeyError, StrictLoader

_OPENERS = {"[": "]", "{": "}", "(": ")"}
_CLOSERS = frozenset(_OPENERS.values())


def parse_overrides(pairs: list[str], lenient: bool = False) -> dict[str, object]:
    """Dotted key → value for each `KEY=VALUE`; `lenient` (`--lenient`) is `data.lenient=true`, which a pair
    may still override. A pair without `=` or with an empty key part is a ConfigError naming the pair."""
    parsed: dict[str, object] = {"data.lenient": True} if lenient else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. train.lr=1e-4")
        if not key:
            raise ConfigError(f"--set {pair!r}: empty key; expected KEY=VALUE, e.g. train.lr=1e-4")
        if not all(part.strip() for part in key.split(".")):
            raise ConfigError(f"--set {pair!r}: key {key!r} has an empty part; expected a dotted key such as train.lr")
        try:
            parsed[key] = parse_value(value, key)
        except DuplicateKeyError as error:
            raise ConfigError(f"--set {pair!r}: duplicate key '{error.key}'") from None
    return parsed


def parse_value(text: str, key: str = "") -> object:
    """`text` as YAML if the whole of it reads as YAML, else a list split as written, else the string.

    Raises DuplicateKeyError (named from `key`) for a mapping that repeats a key: that is YAML, and wrong.
    """
    clean, value = _read_yaml(text, key)
    if clean:
        return value
    inner = text.strip()
    items = _split_top_level(inner[1:-1]) if inner.startswith("[") and inner.endswith("]") else None
    if items is None:
        return text
    return [parse_value(item, f"{key}[{i}]") for i, item in enumerate(items)]


def _read_yaml(text: str, key: str) -> tuple[bool, object]:
    """(True, value) if the whole of `text` is one YAML value; (False, None) if it is not YAML or a comment
    (`#`) would swallow part of it, as in `run #3`."""
    loader = StrictLoader(text, root=key)
    try:
        node = loader.get_single_node()
        if node is None:  # nothing but blanks (null, as in YAML) or a comment (the user's text)
            return not text.strip(), None
        if _end_of(node) < len(text.rstrip()):
            return False, None
        return True, loader.construct_document(node)
    except DuplicateKeyError:
        raise
    except yaml.YAMLError:
        return False, None
    finally:
        loader.dispose()


def _end_of(node: Node) -> int:
    """Where the last value of `node` ends in the text (a block mapping's own end mark runs past comments)."""
    if isinstance(node, ScalarNode) or node.flow_style:
        return node.end_mark.index
    children = [child for pair in node.value for child in pair] if isinstance(node, MappingNode) else node.value
    return max((_end_of(child) for child in children), default=node.end_mark.index)


def _split_top_level(text: str) -> list[str] | None:
    """`text` split on the commas outside brackets and quotes (a trailing comma adds no empty item); None if
    its brackets or quotes do not pair up."""
    items: list[str] = []
    closers: list[str] = []
    quote = ""
    start = 0
    escaped = False
    for index, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"" and _opens_a_quote(text[start:index]):
            quote = char
        elif char in _OPENERS:
            closers.append(_OPENERS[char])
        elif char in _CLOSERS:
            if not closers or char != closers.pop():
                return None
        elif char == "," and not closers:
            items.append(text[start:index])
            start = index + 1
    if quote or closers:
        return None
    items.append(text[start:])
    if not items[-1].strip():  # `[a, b,]`, or nothing at all
        items.pop()
    return [item.strip() for item in items]


def _opens_a_quote(before: str) -> bool:
    """Whether a quote after `before` (the item so far) starts a quoted string: as in YAML, only at the start
    of a value, so the apostrophe in `don't` is a letter."""
    stripped = before.rstrip()
    return not stripped or stripped[-1] in "[{(:,"
