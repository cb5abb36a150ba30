"""The error the config layer raises for user input, kept apart so every config module can raise it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file is malformed or names something unknown; the message names the file and the key."""
