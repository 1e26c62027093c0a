"""A bounded, seeded, class-aware sample that any runner computes identically.

Each valid record gets a priority ``u = uniform01(hash(record id), seed)``. The
sample keeps

* the ``size`` records with the smallest priority overall (a uniform sample), and
* for every class, the ``min_per_class`` records of that class with the smallest
  priority (so rare classes are represented even when the uniform part misses them).

Bottom-k by a hash priority is order-free: any split of the data into bundles,
merged in any order, gives the same sample, so DirectRunner, the portable runner
and Dataflow fit the same detectors. Memory is bounded by
``size + classes * min_per_class`` rows, never by the data size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sanitizer.records import uniform01


@dataclass
class Sample:
    X: np.ndarray
    labels: np.ndarray  # object array of class strings
    keys: np.ndarray  # uint64
    ids: np.ndarray  # object array
    priority: np.ndarray  # float64

    @property
    def n(self) -> int:
        return len(self.keys)

    @staticmethod
    def empty(d: int) -> "Sample":
        return Sample(
            np.zeros((0, d)), np.zeros(0, dtype=object), np.zeros(0, np.uint64), np.zeros(0, dtype=object), np.zeros(0)
        )

    def take(self, index: np.ndarray) -> "Sample":
        return Sample(self.X[index], self.labels[index], self.keys[index], self.ids[index], self.priority[index])

    @staticmethod
    def concat(parts: list["Sample"]) -> "Sample":
        parts = [p for p in parts if p.n] or parts[:1]
        return Sample(
            np.concatenate([p.X for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.keys for p in parts]),
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.priority for p in parts]),
        )


class ClassAwareSampler:
    """Pure-numpy core of the sampling CombineFn."""

    def __init__(self, *, size: int, min_per_class: int, seed: int, n_features: int):
        self.size = size
        self.min_per_class = min_per_class
        self.seed = seed
        self.n_features = n_features

    def create(self) -> list[Sample]:
        return []

    def add(self, acc: list[Sample], X, labels, keys, ids) -> list[Sample]:
        if len(keys) == 0:
            return acc
        pri = uniform01(keys, self.seed)
        part = Sample(np.asarray(X, dtype=np.float64), labels, keys, ids, pri)
        acc.append(self.compact([part]))
        if sum(p.n for p in acc) > 2 * self.size + 4 * self.min_per_class * 16:
            acc = [self.compact(acc)]
        return acc

    def merge(self, accs: list[list[Sample]]) -> list[Sample]:
        parts = [p for acc in accs for p in acc]
        return [self.compact(parts)] if parts else []

    def extract(self, acc: list[Sample]) -> Sample:
        if not acc:
            return Sample.empty(self.n_features)
        s = self.compact(acc)
        # Sort by (priority, key) so the fitted state never depends on merge order.
        order = np.lexsort((s.keys, s.priority))
        return s.take(order)

    def compact(self, parts: list[Sample]) -> Sample:
        s = Sample.concat(parts) if len(parts) > 1 else parts[0]
        n = s.n
        if n <= self.size and self.min_per_class == 0:
            return s
        keep = np.zeros(n, dtype=bool)
        if n > self.size:
            keep[np.argpartition(s.priority, self.size - 1)[: self.size]] = True
        else:
            keep[:] = True
        if self.min_per_class > 0 and n > self.size:
            codes, _ = pd.factorize(s.labels, sort=False)
            order = np.lexsort((s.priority, codes))
            sorted_codes = codes[order]
            starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
            rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
            keep[order[rank < self.min_per_class]] = True
        return s.take(np.flatnonzero(keep))
