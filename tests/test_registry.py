"""The one registry type (dynamics.registry) and the one "did you mean" (dynamics.names)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dynamics.names import closest, did_you_mean
from dynamics.registry import Registry, UnknownName


def test_did_you_mean_suggests_the_closest_and_lists_the_rest() -> None:
    assert closest("nfx", ["fft", "nft", "rt"]) == "nft"
    assert closest("zzzz", ["fft", "nft"]) is None
    assert did_you_mean("nfx", ["rt", "nft"]) == "; did you mean 'nft'? known: nft, rt"
    assert did_you_mean("zzzz", ["rt", "nft"]) == " known: nft, rt"


def test_register_get_and_names() -> None:
    colours: Registry[int] = Registry("colour")

    @colours.register("red")
    def red() -> int:
        return 1

    colours.add("blue", 2)
    assert colours.get("red") is red and colours.get("blue") == 2
    assert colours.names() == ["blue", "red"] and "red" in colours and "green" not in colours
    assert [name for name, _ in colours] == ["blue", "red"]


def test_unknown_name_error_names_the_kind_the_closest_and_the_known() -> None:
    colours: Registry[int] = Registry("colour")
    colours.add("blue", 2)
    colours.add("green", 3)
    expected = r"^unknown colour 'gren'; did you mean 'green'\? known: blue, green$"
    with pytest.raises(UnknownName, match=expected) as info:
        colours.get("gren")
    assert isinstance(info.value, ValueError) and info.value.known == ["blue", "green"]


def test_names_are_unique_across_entries_and_aliases() -> None:
    colours: Registry[int] = Registry("colour")
    colours.add("blue", 2)
    with pytest.raises(ValueError, match="a colour named 'blue' is already registered"):
        colours.add("blue", 3)
    colours.alias("azure", "blue")
    with pytest.raises(ValueError, match="'azure' is already registered"):
        colours.add("azure", 4)


def test_an_alias_may_name_an_entry_registered_later_but_never_a_missing_one() -> None:
    colours: Registry[int] = Registry("colour")
    colours.alias("marine", "navy")  # the module registering "navy" may be imported after this one
    with pytest.raises(UnknownName, match="unknown colour 'navy'"):
        colours.get("marine")
    colours.add("navy", 5)
    assert colours.get("marine") == 5


def test_an_alias_resolves_to_its_entry_and_is_listed() -> None:
    colours: Registry[int] = Registry("colour")
    colours.add("blue", 2)
    colours.alias("azure", "blue")
    assert colours.get("azure") == 2 and colours.canonical("azure") == "blue"
    assert colours.names() == ["azure", "blue"] and colours.aliases() == {"azure": "blue"}
    assert [name for name, _ in colours] == ["blue"]  # iteration gives each entry once


def test_discovery_imports_every_module_of_the_package_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "fake_plugins"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from dynamics.registry import Registry\nPLUGINS = Registry('plugin', discover=__name__)\n"
    )
    for name in ("alpha", "beta"):
        (package / f"{name}.py").write_text(f"from fake_plugins import PLUGINS\nPLUGINS.add('{name}', '{name}!')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import fake_plugins

    try:
        assert fake_plugins.PLUGINS.names() == ["alpha", "beta"]  # neither module was imported before this lookup
        assert fake_plugins.PLUGINS.get("beta") == "beta!"
    finally:
        for module in [m for m in sys.modules if m.startswith("fake_plugins")]:
            del sys.modules[module]


def test_a_failing_provider_is_raised_at_every_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "broken_plugins"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from dynamics.registry import Registry\nPLUGINS = Registry('plugin', discover=__name__)\n"
    )
    (package / "bad.py").write_text("raise ImportError('bad plugin')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import broken_plugins

    try:
        for _ in range(2):  # not hidden behind a half-filled registry the second time
            with pytest.raises(ImportError, match="bad plugin"):
                broken_plugins.PLUGINS.names()
    finally:
        for module in [m for m in sys.modules if m.startswith("broken_plugins")]:
            del sys.modules[module]


def test_unknown_name_survives_pickling() -> None:
    """A worker's error reaches the driver pickled: the message must arrive, not a TypeError of the unpickler."""
    import pickle

    error = UnknownName("template", "alpacca", ["alpaca", "study_a", "study_b"])
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is UnknownName and str(copy) == str(error) and copy.known == error.known
