"""One registry type for every pluggable part a config names: data formats, orders, templates, figures.

Entries register under a unique name where they are defined; a registry built with `discover` imports every
module of that package on first lookup, so adding an entry never means editing a list elsewhere.

    FORMATS = Registry("data source", discover="dynamics.data.formats")

    @FORMATS.register("niv2")
    def load_niv2(...): ...

    FORMATS.get("nvi2")   # UnknownName: unknown data source 'nvi2'; did you mean 'niv2'? known: …
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dynamics.names import did_you_mean

T = TypeVar("T")


class UnknownName(ValueError):
    """A name no entry is registered under; the message suggests the closest and lists the known ones."""

    def __init__(self, kind: str, name: object, known: list[str]):
        super().__init__(f"unknown {kind} {name!r}{did_you_mean(name, known)}")
        self.kind, self.name, self.known = kind, name, known

    def __reduce__(self) -> tuple[type, tuple[str, object, list[str]]]:
        # Raised in a Ray worker, the error is pickled to the driver: rebuild it from its own arguments.
        return (type(self), (self.kind, self.name, self.known))


class Registry(Generic[T]):
    """Name → entry, with aliases and "did you mean" lookups; `kind` is the word errors use ("template")."""

    def __init__(self, kind: str, discover: str | None = None):
        self.kind = kind
        self._discover = discover
        self._discovered = discover is None
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name` (names are unique, aliases included)."""

        def decorate(entry: T) -> T:
            self.add(name, entry)
            return entry

        return decorate

    def add(self, name: str, entry: T) -> None:
        """Register `entry` under `name`."""
        self._check_free(name)
        self._entries[name] = entry

    def alias(self, name: str, target: str) -> None:
        """Make `name` another name of the entry registered as `target` (which may be registered later, by
        another module of the same package); a lookup of an alias whose target never came is an error."""
        self._check_free(name)
        self._aliases[name] = target

    def get(self, name: str) -> T:
        """The entry for `name` (or the entry an alias points at); UnknownName otherwise."""
        return self._entries[self.canonical(name)]

    def canonical(self, name: str) -> str:
        """The registered name behind `name`: itself, or the target of an alias; UnknownName otherwise."""
        self._load()
        if name in self._entries:
            return name
        if name in self._aliases:
            target = self._aliases[name]
            if target not in self._entries:
                raise UnknownName(self.kind, target, sorted(self._entries))
            return target
        raise UnknownName(self.kind, name, self.names())

    def names(self) -> list[str]:
        """Every name a config may use (aliases included), sorted."""
        self._load()
        return sorted([*self._entries, *self._aliases])

    def aliases(self) -> dict[str, str]:
        """alias → registered name."""
        self._load()
        return dict(self._aliases)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[tuple[str, T]]:
        """(name, entry) of every registered entry, aliases left out, by name."""
        self._load()
        return iter(sorted(self._entries.items()))

    def _check_free(self, name: str) -> None:
        if name in self._entries or name in self._aliases:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")

    def _load(self) -> None:
        if self._discovered:
            return
        self._discovered = True  # set first: a module being imported may look its registry up
        try:
            package = importlib.import_module(str(self._discover))
            for module in pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}."):
                importlib.import_module(module.name)
        except BaseException:
            self._discovered = False  # a failed import is raised again at the next lookup, not hidden
            raise
