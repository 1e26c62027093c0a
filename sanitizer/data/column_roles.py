"""Which input columns the detectors judge, and why every other column is left out.

Every input column ends up in exactly one place: the label, the record id, a feature, the
embedding, or the ignored list with a reason a user can read (``IgnoredColumn``). Nothing is
dropped silently; the run records the list in provenance, prints it in its summary and shows it
in the report.

Columns inferred as *id-like* are never features by default: a row counter (an integer column
that mostly counts up by one, as ``rownames`` or a pandas index written out does, or one that
strictly increases row by row, as a sequence number with gaps does), a column named
like a key (``index``, ``Unnamed: 0``, ``row_id``, ``subject_id``, ``Individual ID``), or a text
column whose every value is distinct. A row counter predicts the label of any data set stored
sorted by class, so judging it would quarantine whole classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sanitizer.errors import InputError

ID_NAME = re.compile(
    r"^(rownames?|row[ _.]?names?|index|idx|unnamed: ?\d+|row[ _.]?(id|num|number|no|index)|id|uuid|key)$"
    r"|(^|[ _.-])(id|uuid)$",
    re.IGNORECASE,
)
"""Column names that say "this is a key": whole names (``index``, ``Unnamed: 0``) or an ``id`` word at the end."""
COUNTER_SHARE = 0.95
"""An integer column whose consecutive values step up by exactly one this often is a row counter."""
MIN_ROWS = 20
"""Fewer rows than this in the first batch say nothing about counters or keys."""


@dataclass(frozen=True)
class IgnoredColumn:
    """An input column the detectors do not judge: ``reason`` is a short code, ``detail`` the words."""

    name: str
    reason: str  # "id-like", "text", "date", "unsupported-type", "empty", "inexact-integer", "not-selected"
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason, "detail": self.detail}


def id_like(name: str, type_: pa.DataType, column: pa.Array | None, numeric_text: bool = False) -> str | None:
    """Why ``name`` looks like a record id or row counter, or None. ``column``: the first rows;
    ``numeric_text``: a text column that holds numbers (distinct values there are measurements, not keys)."""
    integer = pa.types.is_integer(type_)
    text = pa.types.is_string(type_) or pa.types.is_large_string(type_)
    if not (integer or text):
        return None
    if ID_NAME.search(name.strip()):
        return "named like a key"
    if column is None or len(column) < MIN_ROWS:
        return None
    if integer:
        values = column.to_numpy(zero_copy_only=False)
        if column.null_count or len(values) < 2:
            return None
        steps = np.diff(values.astype(np.int64))
        if (steps == 1).mean() >= COUNTER_SHARE:
            return "a row counter (counts up by one)"
        if (steps > 0).all():
            return "strictly increasing row by row (a key or sequence number)"
        return None
    if not numeric_text and column.null_count == 0 and pc.count_distinct(column).as_py() == len(column):
        return "every value distinct (a key or free text)"
    return None


def unsupported(name: str, type_: pa.DataType) -> IgnoredColumn:
    """The ignored entry for a column whose type no detector reads yet."""
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_dictionary(type_):
        return IgnoredColumn(name, "text", "text or categorical values; this release judges numeric columns only")
    if pa.types.is_temporal(type_):
        return IgnoredColumn(name, "date", f"dates and times ({type_}); this release judges numeric columns only")
    if pa.types.is_null(type_):
        return IgnoredColumn(name, "empty", "no values in the first rows")
    return IgnoredColumn(name, "unsupported-type", f"type {type_}: not a number or a fixed-size list of numbers")


def unique_over(values: pa.ChunkedArray) -> bool:
    """No nulls and no repeats in the whole column."""
    return values.null_count == 0 and pc.count_distinct(values).as_py() == len(values)


_ROLE_FIX = {
    "label": "store one class per row as text or a number (e.g. the class name), or pass the right --label-column",
    "id": "pass another --id-column, or leave it out to generate ids",
    "text": "leave the column out of the input",
}


def check_role_type(role: str, name: str, t: pa.DataType) -> None:
    """Refuse a label or id column (``role``) whose values cannot name a class or a record: nested values
    (lists, structs, maps, unions) and raw bytes. Raises InputError naming the column, its type and the fix."""
    value_type = t.value_type if pa.types.is_dictionary(t) else t
    raw_bytes = (pa.types.is_binary(value_type) or pa.types.is_large_binary(value_type)
                 or pa.types.is_fixed_size_binary(value_type) or pa.types.is_binary_view(value_type))
    if pa.types.is_nested(value_type) or raw_bytes:
        kind = "raw bytes" if raw_bytes else "nested values"
        raise InputError(
            f"{role} column {name!r} has type {t} ({kind}); {'an' if role == 'id' else 'a'} {role} must be text, a number, a boolean or a date: "
            f"{_ROLE_FIX[role]}"
        )


def check_role_text(role: str, name: str, column, path: str) -> None:
    """Refuse a text column (``role``: label, id, or any other text) holding bytes that are not UTF-8 (a
    Parquet file can store them)."""
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        try:
            (chunk.dictionary if isinstance(chunk, pa.DictionaryArray) else chunk).validate(full=True)
        except pa.ArrowInvalid:
            raise InputError(
                f"{role} column {name!r} in {path!r} holds values that are not valid UTF-8 text; re-encode them as "
                f"UTF-8, or {_ROLE_FIX[role]}"
            ) from None
