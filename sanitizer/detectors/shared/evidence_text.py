"""Plain-text pieces a detector's ``describe`` builds its report lines from: numbers and lists of reference rows.

The report renders the lines as text (``textContent``), never as markup.
"""

from __future__ import annotations

import math
from typing import Any

MAX_NEIGHBOURS = 5
"""Reference rows named per evidence list, in the report's lines and in the rows it looks up."""


def number(value: Any, digits: int = 3) -> str:
    """``value`` as short text: whole numbers without a decimal point, others to ``digits`` significant digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e12:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def reference_rows(items: Any) -> str:
    """The first :data:`MAX_NEIGHBOURS` of a list of reference rows ({id, label} or {id, distance}) as one line."""
    if not isinstance(items, list):
        return ""
    parts = []
    for item in items[:MAX_NEIGHBOURS]:
        if isinstance(item, dict) and "label" not in item and "distance" in item:
            parts.append(f"{item.get('id')} (distance {number(item.get('distance'))})")
        elif isinstance(item, dict):
            parts.append(f"{item.get('id')} ({item.get('label')})")
        else:
            parts.append(str(item))
    more = len(items) - MAX_NEIGHBOURS
    return ", ".join(parts) + (f", +{more} more" if more > 0 else "")


__all__ = ["MAX_NEIGHBOURS", "number", "reference_rows"]
