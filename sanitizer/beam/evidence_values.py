"""Values in words for the evidence of columns the detectors read as codes or days.

The detectors see a categorical column as integer codes and a date column as days, so they cannot name
the value they judged. Evidence asks for it instead: a dict anywhere in a flagged row's evidence (at the
top level or in a list) holding ``"value_from_row": "COLUMN"`` gets ``"value"`` set to the row's value
of that input column as written (text; an ISO date, or date and time where a timestamp has a time of
day; None for a missing value), and the marker removed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

from sanitizer.detectors.base import Scores

MARKER = "value_from_row"


def fill_values(results: dict[str, Scores], table: pa.Table, valid: np.ndarray) -> None:
    """Fill every marked evidence item of ``results`` (evidence keyed by batch row; the batch holds the
    table's ``valid`` rows) from ``table``, in place."""
    rows_of = None
    cache: dict[str, list] = {}
    present = set(table.column_names)
    for scores in results.values():
        for i, evidence in (scores.evidence or {}).items():
            items = list(_marked(evidence))
            if not items:
                continue
            if rows_of is None:
                rows_of = np.flatnonzero(valid)
            row = int(rows_of[int(i)])
            for item in items:
                name = item.pop(MARKER)
                if name not in present:
                    item["value"] = None
                    continue
                if name not in cache:
                    cache[name] = table.column(name)
                item["value"] = _words(cache[name][row].as_py())


def _marked(evidence: Any):
    if isinstance(evidence, dict):
        if MARKER in evidence:
            yield evidence
        for value in evidence.values():
            if isinstance(value, (list, dict)):
                yield from _marked(value)
    elif isinstance(evidence, list):
        for value in evidence:
            yield from _marked(value)


def _words(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.datetime) and value.tzinfo is None and value.time() == dt.time():
        return value.date().isoformat()  # a date stored as a timestamp reads as the date
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)
