"""Checks for settings: the one place a config value is judged integer, number or plain data.

A leaf module: it imports nothing from sanitizer but :mod:`sanitizer.errors`, so both the
config (``sanitizer.config``) and every detector's ``Params.validate`` can use it without
importing each other. Each check raises :class:`ConfigError` naming the key, what is allowed
and what was given.
"""

from __future__ import annotations

from typing import Any

from sanitizer.errors import ConfigError


def check_int(key: str, value: Any, low: int | None = None, high: int | None = None) -> None:
    """Raise ConfigError unless value is an integer (not a bool) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{key} must be <= {high}, got {value}")


def check_number(key: str, value: Any, low: float | None = None, high: float | None = None) -> None:
    """Raise ConfigError unless value is a real number within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{key} must be <= {high}, got {value}")


_PLAIN_SCALARS = (str, int, float, bool, type(None))
_PLAIN_DEPTH = 20


def check_plain_data(key: str, value: Any, _depth: int = 0) -> None:
    """Raise ConfigError unless value is plain data: str, int, float, bool, None, and lists or
    string-keyed mappings of them. Settings handed to a constructor must not smuggle in callables or
    objects (a config from a file is plain data; one built in Python might not be)."""
    if _depth > _PLAIN_DEPTH:
        raise ConfigError(f"{key} is nested more than {_PLAIN_DEPTH} levels deep; settings must be plain data")
    if isinstance(value, _PLAIN_SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain_data(f"{key}[{i}]", item, _depth + 1)
        return
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise ConfigError(f"{key} has a non-string key {name!r}; settings must be plain data")
            check_plain_data(f"{key}.{name}", item, _depth + 1)
        return
    raise ConfigError(
        f"{key} must be plain data (strings, numbers, true/false, null, lists and mappings of them), "
        f"got a {type(value).__name__}: {value!r:.80}"
    )
