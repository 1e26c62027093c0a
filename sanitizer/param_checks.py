"""Checks on parameter values: the one place a config value is judged integer, number or plain data.

A leaf module: it imports nothing from sanitizer but :mod:`sanitizer.errors`, so both the
config (``sanitizer.settings.config``) and every detector's ``Params.validate`` can use it without
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
MAX_VALUES = 100_000
"""Most values (scalars, lists and mappings, every use of a YAML alias counted) a config may expand to."""
MAX_DEPTH = 50
"""Deepest nesting of lists and mappings a config may have."""


def check_size(what: str, value: Any, max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH) -> None:
    """Raise ConfigError when ``value``, expanded as a tree, holds more than ``max_values`` values or nests
    deeper than ``max_depth``, or when a list or mapping contains itself.

    A YAML parser returns one shared object for every use of an anchor, so a few hundred bytes of
    aliases ("billion laughs") expand to billions of values for any code that walks the tree. This
    walk visits each distinct list or mapping once (sizes memoised by identity), so it costs no more
    than the file itself; run it before anything else walks a config.
    """
    known: dict[int, tuple[int, int]] = {}  # id -> (values in its expansion, its height)
    open_: set[int] = set()

    def too_big() -> ConfigError:
        return ConfigError(
            f"{what} expands to more than {max_values:,} values (a YAML alias counts each time it is used); "
            "a config holds settings, not data: remove the repeated anchors/aliases"
        )

    def walk(node: Any, depth: int) -> tuple[int, int]:
        if not isinstance(node, (list, tuple, dict)):
            return 1, 0
        key = id(node)
        if key in open_:
            raise ConfigError(f"{what} contains itself (a YAML alias inside its own anchor); write the values out")
        if key not in known:
            if depth >= max_depth:
                raise ConfigError(f"{what} is nested more than {max_depth} levels deep; settings must be flat")
            open_.add(key)
            total, height = 1, 0
            for item in (list(node.keys()) + list(node.values())) if isinstance(node, dict) else node:
                size, h = walk(item, depth + 1)
                total, height = total + size, max(height, h + 1)
                if total > max_values:
                    raise too_big()
            open_.discard(key)
            known[key] = (total, height)
        total, height = known[key]
        if depth + height > max_depth:
            raise ConfigError(f"{what} is nested more than {max_depth} levels deep; settings must be flat")
        return total, height

    if walk(value, 0)[0] > max_values:
        raise too_big()


def check_plain_data(key: str, value: Any, _depth: int = 0) -> None:
    """Raise ConfigError unless value is plain data: str, int, float, bool, None, and lists or
    string-keyed mappings of them. Settings handed to a constructor must not smuggle in callables or
    objects (a config from a file is plain data; one built in Python might not be). The value's size
    is checked first (:func:`check_size`), so a tree of shared aliases is refused, not walked."""
    if _depth == 0:
        check_size(key, value)
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
