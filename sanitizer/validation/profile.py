"""``sanitize profile``: infer a Great Expectations suite from data a team trusts, in bounded memory.

Like TensorFlow Data Validation's schema inference, but the result is a plain Great
Expectations suite anyone can edit. The input is read once, one record batch at a time,
and each expectation is profiled on what ``sanitize run`` checks it on:

* rules every row must pass (not null, numeric range widened by ``margin`` of the observed
  range, the label set, each categorical column's value set, each date column's range) and
  the totals (row-count bounds: half to twice the rows seen; class-share bounds, in
  ``meta.sanitizer.class_shares``) come from running tallies over every row, so the data
  profiled passes them;
* distribution rules (column mean and spread), which a run checks on its bounded sample and
  on its clean output, come from a seeded uniform sample of at most ``rows`` rows (default: ``sample.size``,
  100,000), the only rows held in memory, and are wide enough to hold both with and without the
  sample's far values, which the detectors may take out. ``meta.sanitizer.sample`` records its size.

For input up to ``rows`` rows the sample is the whole input.

By column kind (``plan.kinds``, sanitizer.data.column_kinds):

* ``categorical`` and ``boolean`` stored as text (or dictionary-encoded): an
  ``expect_column_values_to_be_in_set`` with every value seen, when there are at most
  ``categorical_max_levels`` of them (a column with more gets none, and
  ``meta.sanitizer.value_sets.not_set`` says why); severity ``value_set_severity``;
* ``date`` (dates, timestamps, ISO text): an ``expect_column_values_to_be_between`` with ISO bounds,
  the observed range widened by ``margin`` of its span on each side (one day when every value is the
  same), whole days for a column of dates; severity ``date_range_severity``. A text column with a
  value that does not read as a date gets none (``meta.sanitizer.date_ranges.not_set``);
* ``numeric`` features: ranges, means and spreads as above; ``text`` and ``id-like`` columns: only
  the not-null rule.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.batch import label_strings, mix64, uniform01
from sanitizer.data.column_kinds import is_text
from sanitizer.errors import ConfigError
from sanitizer.io.sources import iter_file_batches
from sanitizer.param_checks import check_int
from sanitizer.validation.suite import _gx, load_suite
from sanitizer.validation.suite_rules import SEVERITIES, safe_suite_name
from sanitizer.version import __version__

_SAMPLE_SALT = np.uint64(0x5A17_9E0F_11E5_0001)


class _BottomK:
    """The ``size`` rows with the smallest seeded priority seen so far (a uniform sample), as Arrow tables."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.parts: list[tuple[pa.Table, np.ndarray]] = []
        self.cutoff = np.inf
        self.rows = 0

    def add(self, table: pa.Table, first_row: int) -> None:
        positions = np.arange(first_row, first_row + table.num_rows, dtype=np.uint64)
        priority = uniform01(mix64(positions ^ _SAMPLE_SALT), self.seed)
        keep = np.flatnonzero(priority <= self.cutoff)
        if len(keep):
            self.parts.append((table.take(pa.array(keep)), priority[keep]))
            self.rows += len(keep)
        if self.rows > 2 * self.size:
            self._compact()

    def _compact(self) -> None:
        table = pa.concat_tables([t for t, _ in self.parts])
        priority = np.concatenate([p for _, p in self.parts])
        if len(priority) > self.size:
            keep = np.sort(np.argpartition(priority, self.size - 1)[: self.size])
            table, priority = table.take(pa.array(keep)), priority[keep]
            self.cutoff = float(priority.max())
        self.parts, self.rows = [(table, priority)], len(priority)

    def table(self, schema: pa.Schema) -> pa.Table:
        if not self.parts:
            return schema.empty_table()
        self._compact()
        return self.parts[0][0]


class _Column:
    """Running tallies of one column: nulls, and for a scalar feature its finite min and max."""

    def __init__(self):
        self.nulls = 0
        self.finite = 0
        self.low, self.high = np.inf, -np.inf

    def add(self, column, scalar: bool) -> None:
        self.nulls += column.null_count
        if scalar:
            values = column.to_numpy(zero_copy_only=False).astype(np.float64)
            values = values[np.isfinite(values)]
            if len(values):
                self.finite += len(values)
                self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))


class _ValueSet:
    """The distinct non-null values of a categorical (or text boolean) column over every row, while there
    are at most ``bound`` of them; past the bound only that it went over is kept."""

    def __init__(self, bound: int):
        self.bound = bound
        self.values: dict[Any, None] | None = {}

    def add(self, column) -> None:
        if self.values is None:
            return
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        for value in pc.unique(column).to_pylist():
            if value is not None:
                self.values.setdefault(value, None)
        if len(self.values) > self.bound:
            self.values = None


_ZONE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


def _utc(value) -> datetime:
    """A date, naive time (read as UTC) or zoned time as a UTC datetime."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class _DateRange:
    """The earliest and latest value of a date column over every row: dates, timestamps or ISO text; whether
    it holds times (not only dates) and time zones; how many text values do not read as dates."""

    def __init__(self):
        self.low: datetime | None = None
        self.high: datetime | None = None
        self.times = self.zoned = False
        self.unparsed = 0
        self.example = ""

    def _extend(self, low, high) -> None:
        low, high = _utc(low), _utc(high)
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def add(self, column) -> None:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        t = column.type
        if pa.types.is_timestamp(t):
            self.times, self.zoned = True, self.zoned or t.tz is not None
        if pa.types.is_date(t) or pa.types.is_timestamp(t):
            span = pc.min_max(column)
            if span["min"].is_valid:
                self._extend(span["min"].as_py(), span["max"].as_py())
            return
        if not is_text(t):
            return
        text = pd.Series(column.drop_null().to_pylist(), dtype=object)
        if text.empty:
            return
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        bad = parsed.isna().to_numpy()
        if bad.any():
            self.unparsed += int(bad.sum())
            self.example = self.example or str(text[bad].iloc[0])[:40]
        self.times = self.times or bool((text.str.len() > 10).any())
        self.zoned = self.zoned or bool(text.str.contains(_ZONE).any())
        if not bad.all():
            self._extend(parsed.min(), parsed.max())

    def bounds(self, margin: float) -> tuple[str, str]:
        """The range widened by ``margin`` of its span (one day when the span is zero), as ISO text: whole
        days for a column of dates, UTC times for one with time zones, times without a zone otherwise."""
        pad = (self.high - self.low) * margin if self.high > self.low else timedelta(days=1)
        low, high = self.low, self.high
        try:
            low = low - pad
        except OverflowError:
            low = datetime.min.replace(tzinfo=timezone.utc)
        try:
            high = high + pad
        except OverflowError:
            high = datetime.max.replace(tzinfo=timezone.utc)
        if not self.times:  # whole days, rounded outwards
            last = high.date() if high.time() == datetime.min.time() or high.date() == datetime.max.date() \
                else high.date() + timedelta(days=1)
            return low.date().isoformat(), last.isoformat()
        if self.zoned:
            return low.isoformat(), high.isoformat()
        return low.replace(tzinfo=None).isoformat(), high.replace(tzinfo=None).isoformat()


FAR_IQRS = 5.0
HUGE = 1e150
"""A column holding a value beyond this gets no mean or spread rule: its square (the spread) or the sum
of a few such values (the mean) overflows float64, wherever it is computed."""
_FLOAT_MAX = float(np.finfo(np.float64).max)


def _finite(bound: float) -> float:
    """A range bound kept within float64 (JSON has no infinity; every finite value lies within the clip)."""
    return float(np.clip(bound, -_FLOAT_MAX, _FLOAT_MAX))


def _without_far_values(values: np.ndarray) -> np.ndarray:
    """The values within FAR_IQRS interquartile ranges of the median (all of them when the IQR is 0)."""
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    width = q3 - q1
    if not width > 0:
        return values
    near = values[np.abs(values - median) <= FAR_IQRS * width]
    return near if len(near) else values


def profile(config, plan, output: str, margin: float = 0.1, rows: int | None = None,
            value_set_severity: str = "critical", date_range_severity: str = "critical") -> dict[str, Any]:
    """Infer a suite from data a team trusts; write it to ``output`` (path or URI) and return it.

    ``plan`` is the run's plan of that input (``sanitizer.beam.plan.make_plan(config)``): its files,
    splits, schema, label, features and column kinds.

    ``rows`` bounds the sample the mean and spread bounds come from (default ``config.sample.size``);
    everything else is tallied over every row (see the module docstring). ``value_set_severity`` and
    ``date_range_severity`` are the severities of the categorical value sets and the date ranges
    (critical, warning or info: a warning or info row check reports its rows and keeps them clean).
    """
    rows = config.sample.size if rows is None else rows
    check_int("rows", rows, low=10)
    for flag, severity in (("value_set_severity", value_set_severity), ("date_range_severity", date_range_severity)):
        if severity not in SEVERITIES:
            raise ConfigError(f"{flag} must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    label = plan.label_column
    scalar = {fc.name for fc in plan.features if not fc.is_list and not fc.coerce}
    names = list(plan.schema.names)
    columns = {name: _Column() for name in names}
    bound = config.categorical_max_levels
    kinds = {k.name: k.kind for k in getattr(plan, "kinds", ())}
    value_sets = {name: _ValueSet(bound) for name in names
                  if name not in scalar and kinds.get(name) in ("categorical", "boolean")}
    dates = {name: _DateRange() for name in names if name not in scalar and kinds.get(name) == "date"}
    sample = _BottomK(rows, config.seed)
    label_values: dict[Any, None] = {}
    class_rows: dict[str, int] = {}
    n = 0
    for split in plan.splits:
        f = plan.files[split.file_index]
        for table in iter_file_batches(f, plan.batch_rows, plan.schema, split):
            for name in names:
                columns[name].add(table.column(name), name in scalar)
            for name, values in value_sets.items():
                values.add(table.column(name))
            for name, span in dates.items():
                span.add(table.column(name))
            for value in pd.Series(table.column(label).to_pylist()).dropna().unique().tolist():
                label_values.setdefault(value, None)
            for k, v in pd.Series(label_strings(table.column(label))).dropna().value_counts().items():
                class_rows[k] = class_rows.get(k, 0) + int(v)
            sample.add(table, n)
            n += table.num_rows
    if n == 0:
        raise ConfigError(f"input {config.input!r} has no rows to profile")
    drawn = sample.table(plan.schema)

    expectations: list[dict] = []

    def add(kind: str, severity: str = "critical", meta: dict | None = None, **kwargs):
        expectations.append({"type": kind, "kwargs": kwargs, "meta": {"profiled": True, **(meta or {})}})
        if severity != "critical":
            expectations[-1]["severity"] = severity

    without_set: dict[str, str] = {}
    without_range: dict[str, str] = {}
    for name in names:
        tally = columns[name]
        if tally.nulls == 0:
            add("expect_column_values_to_not_be_null", column=name)
        if name in value_sets:
            seen = value_sets[name].values
            if seen is None:
                without_set[name] = (f"more than {bound:,} distinct values (categorical_max_levels): no value set; "
                                     "raise the bound or declare the column text")
            elif seen:
                add("expect_column_values_to_be_in_set", severity=value_set_severity, meta={"kind": kinds[name]},
                    column=name, value_set=sorted(seen, key=str))
        if name in dates:
            span = dates[name]
            if span.unparsed:
                without_range[name] = (f"{span.unparsed:,} value(s) that do not read as dates (e.g. "
                                       f"{span.example!r}): no date range")
            elif span.low is not None:
                low, high = span.bounds(margin)
                add("expect_column_values_to_be_between", severity=date_range_severity, meta={"kind": "date"},
                    column=name, min_value=low, max_value=high)
        if name not in scalar or tally.finite == 0:
            continue
        lo, hi = tally.low, tally.high
        pad = margin * hi - margin * lo if hi > lo else margin * max(abs(lo), 1.0)  # never inf, even at +-1e308
        add("expect_column_values_to_be_between", column=name, min_value=_finite(lo - pad), max_value=_finite(hi + pad))
        values = drawn.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        values = values[np.isfinite(values)]
        if len(values) == 0 or np.abs(values).max() > HUGE:
            continue  # a mean or spread of such values overflows float64 (here and where they are checked)
        # The run checks these on its clean output too, after the detectors took the outliers out: the
        # bounds hold for the data with and without its far values (farther than FAR_IQRS interquartile
        # ranges from the median), so profiling data and sanitizing it never contradict each other.
        mean, std = float(values.mean()), float(values.std())
        near = _without_far_values(values)
        low_mean, high_mean = min(mean, float(near.mean())), max(mean, float(near.mean()))
        low_std, high_std = min(std, float(near.std())), max(std, float(near.std()))
        add("expect_column_mean_to_be_between", column=name,
            min_value=low_mean - 0.2 * high_std - 1e-9, max_value=high_mean + 0.2 * high_std + 1e-9)
        if high_std > 0:
            add("expect_column_stdev_to_be_between", column=name, min_value=0.7 * low_std, max_value=1.4 * high_std)
    add("expect_column_values_to_be_in_set", column=label, value_set=sorted(label_values, key=str))
    add("expect_table_row_count_to_be_between", min_value=int(n // 2), max_value=int(2 * n))
    labelled = sum(class_rows.values())
    class_shares = {
        k: [round(max(0.0, v - max(0.5 * v, 0.02)), 6), round(min(1.0, v + max(0.5 * v, 0.02)), 6)]
        for k, v in sorted((k, c / labelled) for k, c in class_rows.items())
    }
    suite = {
        "name": safe_suite_name(os.path.splitext(os.path.basename(output))[0]),
        "expectations": expectations,
        "meta": {
            "great_expectations_version": _gx().__version__,
            "sanitizer": {
                "profiled_from": config.input,
                "rows": n,
                "profiled_at": datetime.now(timezone.utc).isoformat(),
                "sanitizer_version": __version__,
                "margin": margin,
                "class_shares": class_shares,
                "value_sets": {
                    "columns": [n for n in names if n in value_sets and n not in without_set
                                and value_sets[n].values],
                    "severity": value_set_severity,
                    "max_levels": bound,
                    "not_set": without_set,
                },
                "date_ranges": {
                    "columns": [n for n in names if n in dates and n not in without_range and dates[n].low],
                    "severity": date_range_severity,
                    "margin": margin,
                    "not_set": without_range,
                },
                "sample": {
                    "rows": drawn.num_rows,
                    "limit": rows,
                    "seed": config.seed,
                    "note": "column mean and stdev bounds come from this seeded uniform sample of the input "
                            "(a run checks them on its bounded sample); null, range, label-set, value-set, "
                            "date-range, row-count and class-share rules from every row",
                },
            },
        },
    }
    directory = os.path.dirname(output)
    if directory and "://" not in output:
        os.makedirs(directory, exist_ok=True)
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(output) as fh:
        fh.write(json.dumps(suite, indent=2, default=str).encode("utf-8"))
    load_suite(output, names)  # what we wrote must load back
    return suite
