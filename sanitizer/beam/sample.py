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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sanitizer.data.batch import Batch, uniform01


@dataclass(frozen=True)
class Sample:
    """Sampled rows (a :class:`Batch`, every feature kind and role kept) and each row's priority."""

    batch: Batch
    priority: np.ndarray  # float64

    @property
    def n(self) -> int:
        return self.batch.n

    @property
    def labels(self) -> np.ndarray:
        return self.batch.labels

    @property
    def keys(self) -> np.ndarray:
        return self.batch.keys

    def take(self, index: np.ndarray) -> "Sample":
        return Sample(self.batch.take(index), self.priority[index])


class Accumulator:
    """Sample parts plus the priority cutoffs that let later rows be skipped cheaply."""

    def __init__(self):
        self.parts: list[Sample] = []
        self.cutoff = np.inf  # a row above this priority is not in the global bottom-k ...
        self.class_cutoffs: dict[str, float] = {}  # ... nor, above this, in its class's bottom-m

    @property
    def rows(self) -> int:
        return sum(p.n for p in self.parts)


class ClassAwareSampler:
    """Pure-numpy core of the sampling CombineFn."""

    def __init__(self, *, size: int, min_per_class: int, seed: int, widths: Mapping[str, int],
                 columns: Mapping[str, Sequence[str]] | None = None):
        """``widths``: each feature kind's width (:data:`sanitizer.data.batch.NUMERIC` ...) and ``columns``
        the input columns of the kinds that name them (:attr:`sanitizer.data.batch.Batch.columns`): the
        shape of an empty sample."""
        self.size = size
        self.min_per_class = min_per_class
        self.seed = seed
        self.widths = dict(widths)
        self.columns = {kind: tuple(names) for kind, names in (columns or {}).items()}

    def create(self) -> Accumulator:
        return Accumulator()

    def candidates(self, acc: Accumulator, labels: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Mask of the rows that could still enter the sample, given what ``acc`` already holds.

        Lets a caller skip the expensive part (building feature rows) for most of
        the data once the accumulator is full: a row whose priority is above both
        the global and its class's cutoff can never be selected.
        """
        pri = uniform01(keys, self.seed)
        keep = pri <= acc.cutoff
        if not keep.all():
            codes, uniques = pd.factorize(labels)
            unseen = np.inf if self.min_per_class > 0 else -np.inf
            class_cut = np.array([acc.class_cutoffs.get(u, unseen) for u in uniques] + [unseen])
            keep |= pri <= class_cut[codes]
        return keep

    def add(self, acc: Accumulator, batch: Batch) -> Accumulator:
        if batch.n == 0:
            return acc
        rows = np.flatnonzero(self.candidates(acc, batch.labels, batch.keys))
        if len(rows) == 0:
            return acc
        pri = uniform01(batch.keys[rows], self.seed)
        acc.parts.append(Sample(batch.take(rows), pri))
        # Compact once the sample is first full (that sets the cutoffs), then whenever it doubles.
        if acc.rows > 2 * self.size + 4 * self.min_per_class * 16 or (
            not np.isfinite(acc.cutoff) and acc.rows > self.size
        ):
            self._compact_into(acc)
        return acc

    def merge(self, accs) -> Accumulator:
        out = Accumulator()
        for acc in accs:
            out.parts.extend(acc.parts)
        if out.parts and out.rows >= self.size:  # below that, compacting would only copy every row
            self._compact_into(out)
        return out

    def extract(self, acc: Accumulator) -> Batch:
        """The sample's rows, ordered by priority (so its first rows are a uniform subsample); an
        accumulator already in that order (:meth:`settle`) gives its rows without a copy."""
        if not acc.parts:
            return Batch.empty(self.widths, columns=self.columns)
        parts = [p for p in acc.parts if p.n] or acc.parts[:1]
        return self.compact(parts).batch

    def settle(self, acc: Accumulator) -> Accumulator:
        """``acc`` with its rows in one part, in the sample's order: what is sent between workers, so the
        last merge, given one such accumulator, hands its rows to the fit as they are."""
        if acc.parts and not (len(acc.parts) == 1 and _ordered(acc.parts[0])):
            self._compact_into(acc)
        return acc

    def _compact_into(self, acc: Accumulator) -> None:
        s = self.compact(acc.parts)
        acc.parts = [s]
        if s.n >= self.size:
            acc.cutoff = float(np.partition(s.priority, self.size - 1)[self.size - 1])
        cuts: dict[str, float] = {}
        if self.min_per_class > 0:
            codes, uniques = pd.factorize(s.labels, sort=False)
            order = np.lexsort((s.priority, codes))
            sorted_codes, sorted_pri = codes[order], s.priority[order]
            starts = np.searchsorted(sorted_codes, np.arange(len(uniques)))
            ends = np.searchsorted(sorted_codes, np.arange(len(uniques)), side="right")
            for k, name in enumerate(uniques):
                has_quota = ends[k] - starts[k] >= self.min_per_class
                cuts[str(name)] = float(sorted_pri[starts[k] + self.min_per_class - 1]) if has_quota else np.inf
        acc.class_cutoffs = cuts if np.isfinite(acc.cutoff) else {}

    def compact(self, parts: list[Sample]) -> Sample:
        """The rows of ``parts`` the sample keeps as one part, ordered by (priority, key) so the fitted state
        never depends on merge order: one copy of those rows, none when ``parts`` is one such part."""
        if len(parts) == 1 and parts[0].n <= self.size and _ordered(parts[0]):
            return parts[0]
        priority, keys = _joined(parts, "priority"), _joined(parts, "keys")
        kept = self._kept(priority, _joined(parts, "labels"))
        order = kept[np.lexsort((keys[kept], priority[kept]))]
        return Sample(Batch.take_from([p.batch for p in parts], order), priority[order])

    def _kept(self, priority: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Positions of the rows the sample keeps: the ``size`` of smallest priority and each class's
        ``min_per_class`` of smallest priority (every row while there are at most ``size``)."""
        n = len(priority)
        if n <= self.size:
            return np.arange(n)
        keep = np.zeros(n, dtype=bool)
        keep[np.argpartition(priority, self.size - 1)[: self.size]] = True
        if self.min_per_class > 0:
            codes, _ = pd.factorize(labels, sort=False)
            order = np.lexsort((priority, codes))
            sorted_codes = codes[order]
            starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
            rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
            keep[order[rank < self.min_per_class]] = True
        return np.flatnonzero(keep)


def _ordered(part: Sample) -> bool:
    """Whether ``part``'s rows are in the sample's order: by priority, then key."""
    p, k = part.priority, part.keys
    return bool(np.all((p[1:] > p[:-1]) | ((p[1:] == p[:-1]) & (k[1:] >= k[:-1]))))


def _joined(parts: list[Sample], field: str) -> np.ndarray:
    """One per-row field (priority, keys, labels) of ``parts``, one after another."""
    return np.concatenate([getattr(p, field) for p in parts])
