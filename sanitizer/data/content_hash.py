"""The content hash: the one definition of "the same record", written into the quarantine and into review decisions."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

import pyarrow as pa

_CONTENT_VERSION = b"sanitizer-content-v1\n"


def content_columns(names: Iterable[str]) -> list[str]:
    """A record's original columns: every column but the ones the sanitizer adds (``sanitizer_*``, internal)."""
    return [n for n in names if not n.startswith(("sanitizer_", "__sanitizer_"))]


def _canonical(value: Any) -> Any:
    """JSON for the values json cannot write itself (bytes, dates, decimals), tagged so types stay apart."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(value).hex()}
    if hasattr(value, "isoformat"):
        return {"$time": value.isoformat()}
    return {"$" + type(value).__name__: str(value)}


def content_sha256(table, rows=None) -> list[str]:
    """sha256 (hex) of each row's original columns (:func:`content_columns`), in a canonical encoding.

    The one definition of "the same record": the pipeline writes it into the quarantine column
    ``sanitizer_content_sha256``, a decision stores it, and a later run or ``publish`` compares the two.
    The encoding is a versioned prefix + the row as compact JSON with sorted column names (floats as
    Python's shortest round-trip repr, NaN as ``NaN``), so it does not depend on column order, batch
    boundaries or the runner. ``rows``: positions to hash (default all); per-row Python, so the pipeline
    hashes only the rows that need it (quarantined rows and rows with a decision).
    """
    table = table.select(content_columns(table.column_names))
    if rows is not None:
        table = table.take(pa.array(rows, type=pa.int64()))
    out = []
    for record in table.to_pylist():
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical)
        out.append(hashlib.sha256(_CONTENT_VERSION + text.encode("utf-8")).hexdigest())
    return out
