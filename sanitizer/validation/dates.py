"""Date ranges in a suite: an ``expect_column_values_to_be_between`` whose bounds are dates or times is
checked on a *date view* of its column, the column's values read as dates or times whatever it stores.

Great Expectations reads ISO text bounds as dates (``"2007-11-09"``) or datetimes (``"2007-11-09T12:00"``,
with or without a zone) and then compares them with the column's values as they are: text, Arrow dates
(Python dates), timestamps (with or without a zone) would each fail one way or another. ``as_dates``
adds, next to the column (left unchanged for the suite's other checks), a copy of it holding dates,
naive times or UTC times to match the bounds; ``with_date_views`` points the date ranges at those
copies and ``without_date_views`` names the column again in the results. A value present but not a
date fails the range.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

BETWEEN = "expect_column_values_to_be_between"
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RANK = {"date": 0, "naive": 1, "aware": 2}


def bound_kind(value: Any) -> str | None:
    """``"date"``, ``"naive"`` (a time without a zone) or ``"aware"`` (a time with one) when a range bound
    is a date or a time, as Great Expectations reads it (ISO text becomes a date or a datetime); None for
    numbers and other values."""
    if isinstance(value, datetime):
        return "aware" if value.tzinfo is not None else "naive"
    if isinstance(value, date):
        return "date"
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _DATE_ONLY.match(text):
        return "date"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return "aware" if parsed.tzinfo is not None else "naive"


def temporal_columns(expectations) -> dict[str, str]:
    """Column -> how its values are compared (``bound_kind``), for every ``expect_column_values_to_be_between``
    whose bounds are dates or times (a time with a zone wins over one without, which wins over a date)."""
    out: dict[str, str] = {}
    for e in expectations:
        kw = e.get("kwargs") or {}
        if e.get("type") != BETWEEN or not isinstance(kw.get("column"), str):
            continue
        kinds = [k for k in (bound_kind(kw.get("min_value")), bound_kind(kw.get("max_value"))) if k]
        if kinds:
            out[kw["column"]] = max(kinds + [out.get(kw["column"], "date")], key=_TIME_RANK.get)
    return out


def _utc_times(s: pd.Series) -> pd.Series:
    """A column's values as UTC times (a time without a zone read as UTC); NaT where null or not a date."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return s.dt.tz_localize("UTC")
    text = s.map(lambda v: None if v is None or (isinstance(v, float) and v != v)
                 else v.isoformat() if isinstance(v, (date, datetime, pd.Timestamp)) else str(v))
    return pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")


DATE_VIEW = " \u27e8as dates\u27e9"
"""Appended to a column's name for the copy of it a date range is checked on (``as_dates``)."""


def date_view(column: str) -> str:
    return column + DATE_VIEW


def with_date_views(expectations, temporal: dict[str, str]) -> list[dict]:
    """``expectations`` with every date range (``temporal_columns``) checking its column's date view."""
    out = []
    for e in expectations:
        kw = e.get("kwargs") or {}
        if e.get("type") == BETWEEN and kw.get("column") in temporal and \
                (bound_kind(kw.get("min_value")) or bound_kind(kw.get("max_value"))):
            e = {**e, "kwargs": {**kw, "column": date_view(kw["column"])}}
        out.append(e)
    return out


def without_date_views(value: Any) -> Any:
    """A Great Expectations result (JSON) with every date view named by its column again."""
    if isinstance(value, str):
        return value[: -len(DATE_VIEW)] if value.endswith(DATE_VIEW) else value
    if isinstance(value, dict):
        return {without_date_views(k): without_date_views(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_date_views(v) for v in value]
    return value


def as_dates(df: pd.DataFrame, temporal: dict[str, str]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``df`` and, for every column of ``temporal`` (``temporal_columns``), its date view: its values as
    dates or times of the kind its bounds are written in, whether it stores dates, timestamps or ISO text
    (the column itself is unchanged, for the suite's other checks); and, per column, the rows whose value
    is present but is not a date (they fail the range check)."""
    if not temporal:
        return df, {}
    df = df.copy(deep=False)
    unparsed: dict[str, np.ndarray] = {}
    for column, kind in temporal.items():
        if column not in df.columns:
            continue
        s = df[column]
        times = _utc_times(s)
        bad = s.notna().to_numpy() & times.isna().to_numpy()
        if bad.any():
            unparsed[column] = bad
        if kind == "aware":
            df[date_view(column)] = times
        elif kind == "naive":
            df[date_view(column)] = times.dt.tz_localize(None)
        else:
            df[date_view(column)] = pd.Series([None if pd.isna(t) else t.date() for t in times], index=s.index,
                                              dtype=object)
    return df, unparsed
