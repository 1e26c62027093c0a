"""A per-column profile of a data set, built in one pass over Arrow tables and small enough to keep.

A :class:`Profile` is what drift is measured on: the trusted baseline's profile is stored with its run
(:meth:`Profile.to_dict` is plain JSON), and a later run profiles its own data the same way and compares
the two without reading the baseline's rows again.

* numeric and date columns (dates as days since 1970-01-01 UTC): the row count, the missing count, the
  smallest and largest value and a bounded sample of the values: the ``sample_size`` rows with the
  smallest seeded hash of their record key (a bottom-k sample, uniform over the rows and independent of
  how the data is split into batches);
* categorical and boolean columns, and the label: exact counts of each value (the ``max_levels`` most
  frequent ones; the rest are summed as ``other``) and the missing count.

Profiles merge (:func:`merge_profiles`): the merge of the profiles of the parts of a data set is the
profile of the whole, whichever way it was split and in whatever order the parts are merged, so a
pipeline can combine per-batch profiles (``CombineGlobally``). Level counts are exact while a column
holds at most ``max_levels`` distinct values; beyond that the kept levels are the most frequent of each
merge, so the tail is approximate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.batch import salted
from sanitizer.representations.dates import days_since_epoch

SAMPLE_SIZE = 2048
MAX_LEVELS = 1000
NUMERIC_KINDS = ("numeric", "date")
LEVEL_KINDS = ("categorical", "boolean", "label")
FORMAT = 1


@dataclass(frozen=True, eq=False)
class ValueSample:
    """A numeric or date column: counts and a bottom-k sample of its values, ordered by priority."""

    kind: str
    rows: int
    missing: int
    low: float | None
    high: float | None
    priority: np.ndarray  # uint64, ascending
    values: np.ndarray  # float64, the values of the sampled rows

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rows": self.rows, "missing": self.missing, "low": self.low,
                "high": self.high, "priority": [int(p) for p in self.priority],
                "values": [float(v) for v in self.values]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ValueSample:
        return cls(raw["kind"], int(raw["rows"]), int(raw["missing"]), raw["low"], raw["high"],
                   np.array(raw["priority"], dtype=np.uint64), np.array(raw["values"], dtype=np.float64))


@dataclass(frozen=True, eq=False)
class LevelCounts:
    """A categorical, boolean or label column: exact counts of its most frequent values."""

    kind: str
    rows: int
    missing: int
    levels: dict[str, int]  # most frequent first
    other: int  # rows holding a value beyond the kept levels

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rows": self.rows, "missing": self.missing,
                "levels": dict(self.levels), "other": self.other}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LevelCounts:
        return cls(raw["kind"], int(raw["rows"]), int(raw["missing"]),
                   {str(k): int(v) for k, v in raw["levels"].items()}, int(raw["other"]))


ColumnProfile = ValueSample | LevelCounts


@dataclass(frozen=True, eq=False)
class Profile:
    """Every profiled column of a data set, and the columns it could not profile with the reason."""

    seed: int = 0
    sample_size: int = SAMPLE_SIZE
    max_levels: int = MAX_LEVELS
    rows: int = 0
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "seed": self.seed, "sample_size": self.sample_size,
                "max_levels": self.max_levels, "rows": self.rows,
                "columns": {name: column.to_dict() for name, column in self.columns.items()},
                "skipped": dict(self.skipped)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Profile:
        if raw.get("format") != FORMAT:
            raise ValueError(f"a drift profile must have format {FORMAT}, got {raw.get('format')!r}")
        columns = {name: (ValueSample if c["kind"] in NUMERIC_KINDS else LevelCounts).from_dict(c)
                   for name, c in raw["columns"].items()}
        return cls(int(raw["seed"]), int(raw["sample_size"]), int(raw["max_levels"]), int(raw["rows"]),
                   columns, dict(raw["skipped"]))


def _check_sizes(sample_size: int, max_levels: int) -> None:
    if not isinstance(sample_size, int) or sample_size < 1:
        raise ValueError(f"sample_size must be a positive integer, got {sample_size!r}")
    if not isinstance(max_levels, int) or max_levels < 1:
        raise ValueError(f"max_levels must be a positive integer, got {max_levels!r}")


def build_profile(table: pa.Table | pa.RecordBatch, keys: np.ndarray, kinds: Mapping[str, str], *,
                  seed: int = 0, sample_size: int = SAMPLE_SIZE, max_levels: int = MAX_LEVELS) -> Profile:
    """The profile of ``table``, whose rows carry the uint64 record ``keys`` (one per row).

    ``kinds`` names each column's kind: ``numeric``, ``date``, ``categorical``, ``boolean`` or ``label``
    are profiled; any other kind (text, image, embedding, id-like, empty) is listed in ``skipped``, as is
    a named column the table lacks. Columns of ``table`` that ``kinds`` does not name are ignored.
    """
    _check_sizes(sample_size, max_levels)
    keys = np.asarray(keys, dtype=np.uint64)
    if keys.shape != (table.num_rows,):
        raise ValueError(f"keys must hold one uint64 per row ({table.num_rows}), got shape {keys.shape}")
    priority = salted(keys, f"drift:{seed}")
    columns: dict[str, ColumnProfile] = {}
    skipped: dict[str, str] = {}
    present = set(table.column_names)
    for name, kind in kinds.items():
        if name not in present:
            skipped[name] = "not in the data"
        elif kind in NUMERIC_KINDS:
            columns[name] = _value_sample(table.column(name), kind, priority, sample_size)
        elif kind in LEVEL_KINDS:
            columns[name] = _level_counts(table.column(name), kind, max_levels)
        else:
            skipped[name] = f"{kind} columns are compared through their representation vectors"
    return Profile(seed, sample_size, max_levels, table.num_rows, columns, skipped)


def _as_numbers(column: pa.Array | pa.ChunkedArray, kind: str) -> np.ndarray:
    if kind == "date":
        return days_since_epoch(column)
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_string(t) or pa.types.is_large_string(t):  # numbers written as text; the rest is missing
        trimmed = pc.utf8_trim_whitespace(column)
        numeric = pc.match_substring_regex(trimmed, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
        kept = pc.if_else(numeric, trimmed, pa.scalar(None, pa.string()))
        return np.asarray(pc.cast(kept, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    raise ValueError(f"a numeric column must hold numbers or text, got Arrow type {t}")


def _bottom(priority: np.ndarray, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k (priority, value) pairs that come first in (priority, value) order."""
    if len(priority) > 4 * k:  # cut down before the full sort; the k-th priority bounds the answer
        cut = np.partition(priority, k - 1)[k - 1]
        keep = priority <= cut
        priority, values = priority[keep], values[keep]
    order = np.lexsort((values, priority))[:k]
    return priority[order], values[order]


def _value_sample(column, kind: str, priority: np.ndarray, k: int) -> ValueSample:
    values = _as_numbers(column, kind)
    present = np.isfinite(values)
    values, chosen = values[present], priority[present]
    low = float(values.min()) if len(values) else None
    high = float(values.max()) if len(values) else None
    p, v = _bottom(chosen, values, k)
    return ValueSample(kind, len(present), int((~present).sum()), low, high, p, v)


def _level_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _truncated(counts: Mapping[str, int], other: int, max_levels: int) -> tuple[dict[str, int], int]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    other += sum(n for _, n in ranked[max_levels:])
    return dict(ranked[:max_levels]), other


def _level_counts(column, kind: str, max_levels: int) -> LevelCounts:
    counts: dict[str, int] = {}
    missing = 0
    for item in pc.value_counts(column).to_pylist():
        value, n = item["values"], int(item["counts"])
        if value is None or (isinstance(value, float) and np.isnan(value)):
            missing += n
        else:
            text = _level_text(value)
            counts[text] = counts.get(text, 0) + n
    levels, other = _truncated(counts, 0, max_levels)
    return LevelCounts(kind, len(column), missing, levels, other)


def _merge_column(a: ColumnProfile, b: ColumnProfile, sample_size: int, max_levels: int) -> ColumnProfile:
    if a.kind != b.kind:
        raise ValueError(f"cannot merge a {a.kind} column profile with a {b.kind} one")
    rows, missing = a.rows + b.rows, a.missing + b.missing
    if isinstance(a, ValueSample):
        lows = [x for x in (a.low, b.low) if x is not None]
        highs = [x for x in (a.high, b.high) if x is not None]
        low, high = (min(lows), max(highs)) if lows else (None, None)
        p, v = _bottom(np.concatenate([a.priority, b.priority]), np.concatenate([a.values, b.values]),
                       sample_size)
        return ValueSample(a.kind, rows, missing, low, high, p, v)
    counts = dict(a.levels)
    for level, n in b.levels.items():
        counts[level] = counts.get(level, 0) + n
    levels, other = _truncated(counts, a.other + b.other, max_levels)
    return LevelCounts(a.kind, rows, missing, levels, other)


def _merge_two(a: Profile, b: Profile) -> Profile:
    if (a.seed, a.sample_size, a.max_levels) != (b.seed, b.sample_size, b.max_levels):
        raise ValueError("profiles merge only with the same seed, sample_size and max_levels, got "
                         f"{(a.seed, a.sample_size, a.max_levels)} and {(b.seed, b.sample_size, b.max_levels)}")
    columns = dict(a.columns)
    for name, column in b.columns.items():
        columns[name] = (_merge_column(columns[name], column, a.sample_size, a.max_levels)
                         if name in columns else column)
    skipped = {**a.skipped, **b.skipped}
    for name in columns:
        skipped.pop(name, None)
    return Profile(a.seed, a.sample_size, a.max_levels, a.rows + b.rows, columns, dict(sorted(skipped.items())))


def merge_profiles(*profiles: Profile) -> Profile:
    """One profile of all the data the given profiles were built from (at least one profile)."""
    if not profiles:
        raise ValueError("merge_profiles needs at least one profile")
    return reduce(_merge_two, profiles)
