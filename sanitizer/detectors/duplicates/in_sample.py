"""Copies within one batch of detector inputs: what ``duplicates`` finds when it is fitted outside a
pipeline (a notebook, a test), and the state a pipeline replaces with the verdicts over every record.

A record's content here is what the detectors see of it: its numeric features, categorical codes, dates,
texts and decoded images (two records equal in those are copies), judged with the same chance estimate and
group rules as the pipeline's stage (:mod:`sanitizer.detectors.duplicates.groups`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sanitizer.data.batch import Batch, mix64
from sanitizer.detectors.duplicates.chance import ChanceModel, ChanceSample, priorities
from sanitizer.detectors.duplicates.content import KEYS
from sanitizer.detectors.duplicates.groups import Part, Verdicts, decide


def _columns(batch: Batch) -> list[np.ndarray]:
    """Each feature column of the batch as a (n,) array of hashable values (a row's bytes for wide kinds)."""
    out = []
    for kind, values in sorted(batch.features.items()):
        values = np.asarray(values)
        if values.ndim == 1:
            values = values[:, None]
        if values.dtype == object:
            out.extend(np.array(["\0" if v is None else str(v) for v in values[:, j]], dtype=object)
                       for j in range(values.shape[1]))
        elif values.ndim > 2:  # images: one column per image column, its pixels as bytes
            out.extend(np.array([r.tobytes() for r in values[:, j]], dtype=object) for j in range(values.shape[1]))
        else:
            v = values.astype(np.float64) if values.dtype.kind == "f" else values
            if v.dtype.kind == "f":
                v = np.where(v == 0, 0.0, v)  # -0.0 is 0.0
                v = np.where(np.isnan(v), -1.2345e300, v)  # every NaN one value
            out.extend(v[:, j] for j in range(v.shape[1]))
    return out


def verdicts_in(batch: Batch, chance_max: float, seed: int) -> Verdicts:
    """The held records of ``batch``: exact copies (one kept, the first in the batch), label conflicts."""
    n = batch.n
    if n < 2:
        return Verdicts()
    columns = _columns(batch)
    per_column = np.zeros((n, len(columns)), dtype=np.uint64)
    h = [np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)]
    for j, column in enumerate(columns):
        for f, key in enumerate(KEYS):
            hashed = np.asarray(pd.util.hash_array(column, hash_key=key, categorize=False), dtype=np.uint64)
            if f == 0:
                per_column[:, j] = hashed
            h[f] = mix64(h[f] * np.uint64(0x100000001B3) ^ hashed ^ np.uint64(j + 1))
    keys = np.asarray(batch.keys, dtype=np.uint64)
    model = ChanceModel.fit(ChanceSample(priorities(keys, seed), keys, per_column))
    expected = model.expected_copies(per_column, keys, n).astype(np.float32)
    labels = None if batch.labels is None else pa.array([None if v is None else str(v) for v in batch.labels],
                                                        pa.string())
    part = Part(h[0], h[1], keys, np.arange(n, dtype=np.uint64), expected, labels,
                pa.array([str(i) for i in batch.ids], pa.string()))
    return decide([part], chance_max)
