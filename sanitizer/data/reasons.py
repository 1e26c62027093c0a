"""The quarantine's reasons column: an Arrow list of structs, one per reason a record was held or flagged.

::

    sanitizer_reasons: list<struct<detector: string, code: string, action: string,
                                    score: double, threshold: double, evidence_json: string>>

DuckDB, Spark, Polars and pandas read it as nested data, without parsing JSON::

    SELECT r.detector, r.score FROM 'OUT/quarantine/*.parquet', UNNEST(sanitizer_reasons) AS t(r)

Only a reason's ``evidence`` (different keys per detector) stays a JSON object, in
``evidence_json``. Runs published before this column existed wrote the whole list
as one JSON string; :func:`parse` reads both.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

REASON_TYPE = pa.struct([
    pa.field("detector", pa.string()),
    pa.field("code", pa.string()),
    pa.field("action", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("threshold", pa.float64()),
    pa.field("evidence_json", pa.string()),
])
REASONS_TYPE = pa.list_(REASON_TYPE)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _default(value: Any):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def to_arrow(rows: list[list[dict]]) -> pa.Array:
    """One list of reason structs per quarantined row, from the policy's reason entries."""
    return pa.array([
        [{
            "detector": e.get("detector"),
            "code": e.get("code"),
            "action": e.get("action") or "quarantine",  # row checks always hold the row
            "score": _number(e.get("score")),
            "threshold": _number(e.get("threshold")),
            "evidence_json": json.dumps(e.get("evidence") or {}, sort_keys=True, default=_default),
        } for e in entries]
        for entries in rows
    ], type=REASONS_TYPE)


def parse(value: Any) -> list[dict]:
    """A row's reasons as ``{detector, code, action, score, threshold, evidence}`` dicts.

    ``value`` is the column's value for one row: a list of structs (this schema) or,
    for runs published before it, the JSON text of the list; ``[]`` when absent or unreadable."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value) if value else []
        except ValueError:
            return []
        return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []
    out = []
    for entry in value:
        entry = dict(entry)
        text = entry.pop("evidence_json", None)
        try:
            entry["evidence"] = json.loads(text) if text else {}
        except ValueError:
            entry["evidence"] = {}
        out.append(entry)
    return out
