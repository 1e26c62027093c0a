"""How many clean rows hold each value of a categorical column, summed over a run's batches, bounded.

The vocabularies a run hands to training (``manifest.json``) and records in provenance are counted over
every clean row, not only the first rows the plan reads: a level that first appears late in the data
still gets a code of its own. Each column keeps at most :data:`KEEP` distinct values while batches are
summed; past that the rarest are dropped (a vocabulary keeps at most ``categorical_max_levels`` of them,
and the values dropped are the ones it would fold into ``other``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEEP = 8_192
"""Distinct values kept per column while counts are summed."""


def count_levels(table: pa.Table, columns: list[str]) -> dict[str, dict[str, int]]:
    """Column -> value (as text, ``str`` of the value) -> rows of ``table`` holding it; nulls not counted."""
    out: dict[str, dict[str, int]] = {}
    for name in columns:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        counted = pc.value_counts(column.drop_null()) if len(column) else None
        levels: dict[str, int] = {}
        if counted is not None:
            for value, n in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
                key = str(value)  # 1 and "1" read alike, as the vocabulary compares values
                levels[key] = levels.get(key, 0) + int(n)
        out[name] = _bounded(levels)
    return out


def add_levels(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The sum of two counts (each column bounded to :data:`KEEP` values)."""
    if not b:
        return a
    if not a:
        return b
    out = dict(a)
    for name, levels in b.items():
        merged = dict(out.get(name, {}))
        for value, n in levels.items():
            merged[value] = merged.get(value, 0) + n
        out[name] = _bounded(merged)
    return out


def _bounded(levels: dict[str, int]) -> dict[str, int]:
    if len(levels) <= KEEP:
        return levels
    values = list(levels)
    counts = np.fromiter(levels.values(), dtype=np.int64, count=len(values))
    keep = np.argsort(-counts, kind="stable")[:KEEP]
    return {values[i]: int(counts[i]) for i in keep}
