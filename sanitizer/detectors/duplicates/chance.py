"""Chance is not a copy: how often a record's content would repeat in data of this size by chance alone.

In a table of a few low-cardinality columns, identical rows are expected (thousands of survey rows share
age group, sex and education), and holding them would remove real data. So a group of identical records
is held only when its content is unlikely to occur twice by chance. The estimate comes from the data: the
share ``p_c(v)`` of a bounded, seeded sample of records holding value ``v`` in column ``c`` (a value the
sample does not hold elsewhere counts as half a row), and

    bits(row) = - sum_c log2 p_c(v_c)        expected chance copies = (N - 1) * 2 ** -bits(row)

for N records in the run. Columns are treated as independent; correlated columns make real collisions more
likely than this, so the bar (``chance_max``, the expected chance copies a held group may have) is set far
below one. Continuous columns carry about log2(sample rows) bits each, so a row with a couple of measured
values is never a chance copy; a row of three yes/no answers always might be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sanitizer.data.batch import uniform01

SAMPLE_SALT = "duplicates-chance"


def priorities(keys: np.ndarray, seed: int) -> np.ndarray:
    """Each record's draw for the chance sample (the bottom ``rows`` by this are the sample)."""
    return uniform01(keys, f"{SAMPLE_SALT}:{seed}")


@dataclass(frozen=True)
class ChanceSample:
    """A bottom-k sample of records' per-column value hashes: order-free, so every runner draws the same."""

    priority: np.ndarray  # (s,) float64
    keys: np.ndarray  # (s,) uint64
    values: np.ndarray  # (s, m) uint64: first-family column hashes (content.row_hashes)

    @staticmethod
    def empty(m: int) -> "ChanceSample":
        return ChanceSample(np.zeros(0), np.zeros(0, dtype=np.uint64), np.zeros((0, m), dtype=np.uint64))

    def bottom(self, rows: int) -> "ChanceSample":
        if len(self.priority) <= rows:
            return self
        keep = np.argsort(self.priority, kind="stable")[:rows]
        keep.sort()
        return ChanceSample(self.priority[keep], self.keys[keep], self.values[keep])

    @staticmethod
    def merge(parts: list["ChanceSample"], rows: int) -> "ChanceSample":
        parts = [p for p in parts if len(p.priority)] or parts[:1]
        merged = ChanceSample(np.concatenate([p.priority for p in parts]), np.concatenate([p.keys for p in parts]),
                              np.concatenate([p.values for p in parts]))
        out = merged.bottom(rows)
        order = np.lexsort((out.keys, out.priority))  # one order whatever the merge order
        return ChanceSample(out.priority[order], out.keys[order], out.values[order])


@dataclass(frozen=True)
class ChanceModel:
    """Per-column value frequencies of the sample; :meth:`bits` of any record's content."""

    rows: int
    values: tuple[np.ndarray, ...]  # per column: sorted distinct value hashes
    counts: tuple[np.ndarray, ...]  # per column: how many sample rows hold each
    sample_keys: np.ndarray  # sorted keys of the sample's records (a record does not count itself)

    @staticmethod
    def fit(sample: ChanceSample) -> "ChanceModel":
        values, counts = [], []
        for j in range(sample.values.shape[1]):
            v, c = np.unique(sample.values[:, j], return_counts=True)
            values.append(v)
            counts.append(c)
        return ChanceModel(len(sample.keys), tuple(values), tuple(counts), np.sort(sample.keys))

    def bits(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """(k,) float64: the information in each record's content (``values``: (k, m) column hashes), in bits;
        its own appearance in the sample is left out."""
        k = len(keys)
        if self.rows == 0:
            return np.full(k, np.inf)
        pos = np.searchsorted(self.sample_keys, keys)
        own = (pos < len(self.sample_keys)) & (self.sample_keys[np.minimum(pos, len(self.sample_keys) - 1)] == keys)
        total = np.zeros(k)
        for j, (v, c) in enumerate(zip(self.values, self.counts)):
            at = np.searchsorted(v, values[:, j])
            hit = (at < len(v)) & (v[np.minimum(at, len(v) - 1)] == values[:, j])
            count = np.where(hit, c[np.minimum(at, len(v) - 1)], 0) - own
            share = np.maximum(count, 0.5) / self.rows
            total -= np.log2(np.minimum(share, 1.0))
        return total

    @staticmethod
    def expected_copies(bits: np.ndarray, records: int) -> np.ndarray:
        """Expected number of other records among ``records`` with the same content by chance."""
        return max(records - 1, 0) * np.exp2(-np.asarray(bits, dtype=np.float64))
