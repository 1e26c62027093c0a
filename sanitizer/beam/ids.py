"""Record ids must be unique: ids bucketed by hash, duplicates found per bucket and merged into one report."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sanitizer.data.batch import KEY_COLUMN

ID_BUCKETS = 64
MAX_REPORTED_DUPLICATES = 20


def id_buckets(table: pa.Table, id_column: str):
    """Split a batch's (key, id) pairs into hash buckets, so duplicates meet in one place."""
    keys = table.column(KEY_COLUMN).to_numpy()
    ids = table.column(id_column).combine_chunks()
    bucket = (keys % np.uint64(ID_BUCKETS)).astype(np.int64)
    for b in np.unique(bucket):
        rows = np.flatnonzero(bucket == b)
        yield int(b), (keys[rows], ids.take(pa.array(rows)))


def find_duplicate_ids(item) -> list[dict[str, Any]]:
    """Ids that occur more than once in one bucket (exact: hash matches are checked on the ids)."""
    _, parts = item
    parts = list(parts)
    keys = np.concatenate([p[0] for p in parts])
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeated = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if len(repeated) == 0:
        return []
    candidates = np.unique(sorted_keys[repeated])
    ids = pa.concat_arrays([p[1].cast(pa.string()) for p in parts])
    rows = np.flatnonzero(np.isin(keys, candidates))
    counts = pd.Series(ids.take(pa.array(rows)).to_pylist()).value_counts()
    return [{"id": str(k), "count": int(v)} for k, v in counts.items() if v > 1]


def merge_duplicates(parts) -> dict[str, Any]:
    total = 0
    examples: list[dict[str, Any]] = []
    for part in parts:
        if "duplicated_ids" in part:  # an earlier merge
            total += part["duplicated_ids"]
            examples.extend(part["examples"])
        else:
            total += 1
            examples.append(part)
    examples = sorted(examples, key=lambda e: (-e["count"], e["id"]))[:MAX_REPORTED_DUPLICATES]
    return {"duplicated_ids": total, "examples": examples}
