"""The values of categorical, boolean-as-text and date columns as the report shows them: as written.

The detectors judge these columns by codes and days; a reviewer reads them as the data holds them. The
tabular view (:mod:`sanitizer.report.tabular`) shows them beside the numeric features:

- which columns: those ``columns.kinds`` in provenance records as judged with one of the kinds in
  :data:`KINDS` (a column the run left out is not shown);
- each value as text: a string as written, a dictionary value decoded, a date or timestamp in ISO 8601
  (the date alone at midnight), other values as Python writes them; None where missing; at most
  :data:`MAX_VALUE_CHARS` characters (longer ones end in "…"; the page also cuts them short on screen
  and keeps the stored text in a tooltip);
- a date's days since 1970 (:func:`sanitizer.representations.dates.days_since_epoch`), so its typical
  range and how far a value lies outside it read like a number's.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from sanitizer.representations.dates import days_since_epoch

KINDS = ("categorical", "boolean", "date")
MAX_VALUE_CHARS = 120


def columns(kinds: list[dict], schema: pa.Schema, numeric: set[str]) -> list[tuple[str, str]]:
    """(column, kind) of every judged column of :data:`KINDS` the shards hold, in input order, leaving out
    the ``numeric`` ones (an Arrow boolean is read as 0/1 with the numeric features)."""
    out = []
    for k in kinds:
        name, kind = str(k.get("name", "")), str(k.get("kind", ""))
        if k.get("judged") and kind in KINDS and name in schema.names and name not in numeric:
            t = schema.field(name).type
            if not (pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)):
                out.append((name, kind))
    return out


def clip(value: str | None) -> str | None:
    if value is None or len(value) <= MAX_VALUE_CHARS:
        return value
    return value[: MAX_VALUE_CHARS - 1] + "…"


def _word(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def values(batch, written: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(texts, days) of a record batch or table: (rows, columns) object array of the values as written
    (see the module's doc), and float64 days since 1970 of the date columns (NaN elsewhere and where
    missing or unreadable)."""
    n = batch.num_rows
    texts = np.full((n, len(written)), None, dtype=object)
    days = np.full((n, len(written)), np.nan)
    names = batch.schema.names
    for j, (name, kind) in enumerate(written):
        if name not in names:
            continue
        col = batch.column(names.index(name))
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if kind == "date":
            try:
                days[:, j] = days_since_epoch(col)
            except (pa.ArrowException, ValueError, OverflowError):
                pass  # shown as written, without a typical range
        for i, value in enumerate(col.to_pylist()):
            texts[i, j] = clip(_word(value))
    return texts, days
