"""Safe terminal output: every line the ``sanitize`` command prints from data goes through :func:`printable`."""

from __future__ import annotations

import re
from typing import Any

_ESCAPED = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]}
_ESCAPED.update({c: f"\\u{c:04x}" for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]})
_UNSAFE = re.compile("[" + "".join(re.escape(chr(c)) for c in _ESCAPED) + "]")


def printable(text: Any) -> str:
    """``text`` safe for a terminal: C0 and C1 control characters, DEL and the bidi controls (embeddings,
    overrides, isolates, marks) become visible escapes (``\\x1b``, ``\\u202e``); everything else, other
    scripts included, is kept. Used for every line this CLI prints from data."""
    text = str(text)
    return _UNSAFE.sub(lambda m: _ESCAPED[ord(m.group())], text) if _UNSAFE.search(text) else text
