"""Dates as numbers: each value of a date or timestamp column becomes the days since 1970-01-01 00:00 UTC
as float64 (a time of day is the fraction of its day), NaN where the value is missing.

* Arrow dates and timestamps: exact, by their unit; a timestamp with a time zone counts from UTC, one
  without is taken as written. Times of day read as the fraction of a day, durations as days.
* Text: ISO 8601 (``2007-11-11``, ``2007-11-11T10:30:00``, ``2007-11-11 10:30:00+02:00``), as the plan
  reads a date column's range (:func:`sanitizer.data.column_kinds.date_range`); an offset counts from UTC.
  Text that is no ISO 8601 date reads as missing (NaN). Dates far outside pandas' nanosecond range (the
  year 1 or 9999) keep their value.

Only the distinct values of a text column are parsed (through a dictionary encoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.batch import DATE

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_SECONDS_PER_DAY = 86_400


def days_since_epoch(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(n,) float64: the days since 1970-01-01 UTC of every value of ``column``, NaN where missing or
    unreadable."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [_days(chunk) for chunk in chunks if len(chunk)]
    if not parts:
        return np.zeros(0, dtype=np.float64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _days(chunk: pa.Array) -> np.ndarray:
    t = chunk.type
    if pa.types.is_dictionary(t):
        if pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type):
            return _text_days(chunk)
        chunk, t = chunk.cast(t.value_type), t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _text_days(pc.dictionary_encode(chunk))
    if pa.types.is_date32(t):
        per_day = 1
    elif pa.types.is_date64(t):
        per_day = 1_000 * _SECONDS_PER_DAY
    elif pa.types.is_timestamp(t) or pa.types.is_time(t) or pa.types.is_duration(t):
        per_day = _PER_SECOND[t.unit] * _SECONDS_PER_DAY
    else:  # intervals, or a type no date reads from
        return np.full(len(chunk), np.nan)
    whole = chunk.view(pa.int32() if t.bit_width == 32 else pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    days = whole.astype(np.float64) / per_day
    if chunk.null_count:
        days[np.asarray(chunk.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = np.nan
    return days


def _text_days(encoded: pa.DictionaryArray) -> np.ndarray:
    """Days of a dictionary-encoded text column: each distinct text parsed once."""
    text = encoded.dictionary.to_pylist()
    parsed = pd.DatetimeIndex(pd.to_datetime(pd.Series(text, dtype=object), errors="coerce", format="ISO8601",
                                             utc=True))
    # The integers in the unit pandas chose (microseconds for dates beyond the nanosecond range), from UTC.
    lookup = parsed.asi8.astype(np.float64) / (_PER_SECOND[parsed.unit] * _SECONDS_PER_DAY)
    lookup[parsed.isna()] = np.nan
    lookup = np.append(lookup, np.nan)  # the index a null row reads
    index = encoded.indices.fill_null(len(text)).to_numpy(zero_copy_only=False)
    return lookup[index]


@dataclass(frozen=True)
class DateDays:
    """The encoder of one date column: its values as days since 1970-01-01 (:func:`days_since_epoch`)."""

    kind: ClassVar[str] = DATE
    name: str

    def encode(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """(n,) float64 days, NaN where missing."""
        return days_since_epoch(column)
