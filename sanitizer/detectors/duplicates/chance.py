"""Chance is not a copy: how often a record's content would repeat in data of this size by chance alone.

In a table of a few low-cardinality columns, identical rows are expected (thousands of survey rows share
age group, sex and education), and holding them would remove real data. So a group of identical records
is held only when its content is unlikely to occur twice by chance. The estimate comes from the data: the
share ``p_c(v)`` of a bounded, seeded sample of records holding value ``v`` in column ``c`` (the record's
own copies left out; a value the sample holds nowhere else gets one over the column's estimated number of
distinct values, nothing in a free-form column), and the expected number of chance copies of a
record's content among the run's N records is the larger of

* ``(N - 1) * prod_c p_c(v_c)``, the columns taken as independent: a row of three yes/no answers is
  always expected again; a row with a couple of measured values never is;
* what the data's own near-equal records say (:meth:`ChanceModel.expected_copies`): columns are rarely
  independent, and where many records differ from this one in a single column, an exact match is expected
  too;
* the record cut in two parts, each part's content counted whole in the sample: neighbourhood statistics
  repeat for every customer of a neighbourhood, and common product holdings for many customers, so two
  customers of one neighbourhood holding the same common products are expected to match, though no column
  alone says so. The cuts are the schema's own order in 2, 3 and 4 runs of columns (a table keeps related
  columns together).

A group is held only when fewer than ``chance_max`` chance copies are expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sanitizer.data.batch import mix64, uniform01

SAMPLE_SALT = "duplicates-chance"


def priorities(keys: np.ndarray, seed: int) -> np.ndarray:
    """Each record's draw for the chance sample (the bottom ``rows`` by this are the sample)."""
    return uniform01(keys, f"{SAMPLE_SALT}:{seed}")


@dataclass(frozen=True)
class ChanceSample:
    """A bottom-k sample of records' per-column value hashes: order-free, so every runner draws the same
    (drawn and merged by :class:`sanitizer.beam.duplicate_samples.Samples`)."""

    priority: np.ndarray  # (s,) float64
    keys: np.ndarray  # (s,) uint64
    values: np.ndarray  # (s, m) uint64: first-family column hashes (content.row_hashes)

    @staticmethod
    def empty(m: int) -> "ChanceSample":
        return ChanceSample(np.zeros(0), np.zeros(0, dtype=np.uint64), np.zeros((0, m), dtype=np.uint64))


def _additive(values: np.ndarray) -> np.ndarray:
    """(k, m) uint64: each column's value mixed with its position; their wrapping sum is an order-free row
    hash from which one column's term can be taken out (the row's content without that column)."""
    m = values.shape[1]
    salts = mix64(np.arange(1, m + 1, dtype=np.uint64) * np.uint64(0x632BE59BD9B4E019))
    return mix64(values ^ salts[None, :])


FREE_FORM = 0.95
"""A column whose sampled values are this share or more seen once (free text, image bytes, pixel lists,
precise measurements) is free-form: a value no other sampled record holds is taken for unique."""


def _distinct(counts: np.ndarray) -> float:
    """The number of distinct values the column holds beyond the sample (Chao1: the values seen, plus
    f1^2 / 2 f2 more, from how many values the sample saw once (f1) and twice (f2)); infinite for a
    free-form column (:data:`FREE_FORM`); two for a yes/no column."""
    f1 = int((counts == 1).sum())
    f2 = int((counts == 2).sum())
    if len(counts) and f1 >= FREE_FORM * len(counts):
        return float("inf")
    return float(len(counts) + f1 * (f1 - 1) / (2.0 * (f2 + 1)))


def _counts(sorted_values: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    if len(sorted_values) == 0:
        return np.zeros(len(query), dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_values, query), len(sorted_values) - 1)
    return np.where(sorted_values[at] == query, counts[at], 0)


BLOCK_COLUMNS = 128
"""Columns (the fewest-valued ones) whose pairwise dependence is measured to form blocks."""
BLOCK_VALUES = 1000
"""A column with more distinct values in the sample than this (or than a tenth of the sample's records: its
values must repeat for a dependence to show) is a block of its own."""
DETERMINED = 0.1
"""Two columns form one block when each leaves at most this share of the other's entropy unexplained (one
fact written twice, such as a product's premium class and its count of policies)."""
MIN_BITS = 0.5
"""Columns with less entropy than this in the sample (nearly constant) join no block: almost anything
predicts them, and they would chain unrelated columns together."""


def _entropy(codes: np.ndarray) -> float:
    _, c = np.unique(codes, return_counts=True)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def blocks(values: np.ndarray) -> list[np.ndarray]:
    """Groups of columns that move together in the sample (each nearly determines the other, such as a
    product's premium class and its count of policies): a record one block apart from another differs in
    one fact, however many columns record it. Columns join by union over such pairs."""
    m = values.shape[1]
    parent = list(range(m))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if len(values) > 1:
        distinct = np.array([len(np.unique(values[:, j])) for j in range(m)])
        most = min(BLOCK_VALUES, len(values) // 10)  # a value must repeat for dependence to be measurable
        candidates = [j for j in np.argsort(distinct, kind="stable") if 1 < distinct[j] <= most][:BLOCK_COLUMNS]
        h = {j: _entropy(values[:, j]) for j in candidates}
        for a, i in enumerate(candidates):
            for j in candidates[a + 1:]:
                if min(h[i], h[j]) < MIN_BITS:
                    continue
                joint = _entropy(mix64(values[:, i]) ^ values[:, j])
                if min(joint - h[i], joint - h[j]) <= DETERMINED * min(h[i], h[j]):
                    parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for j in range(m):
        groups.setdefault(find(j), []).append(j)
    return [np.array(g) for g in sorted(groups.values())]


CUTS = (2, 3, 4)
"""The record is cut into this many runs of adjacent columns, each run against the rest (:func:`cuts`)."""


def cuts(m: int) -> list[np.ndarray]:
    """Runs of adjacent columns: the record in 2, 3 and 4 parts, in schema order (each run is held against
    the rest of the record)."""
    runs: dict[tuple[int, int], None] = {}
    for parts in CUTS:
        if parts > m:
            continue
        edges = np.linspace(0, m, parts + 1).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            runs[(int(a), int(b))] = None
    return [np.arange(a, b) for a, b in runs]


@dataclass(frozen=True)
class ChanceModel:
    """Per-column value frequencies of the sample, and how many sample records differ from a given content
    in exactly one column; :meth:`expected_copies` of any record's content."""

    rows: int
    values: tuple[np.ndarray, ...]  # per column: sorted distinct value hashes
    counts: tuple[np.ndarray, ...]  # per column: how many sample rows hold each
    unseen: tuple[float, ...] = ()  # per column: the share of one value the sample holds no other copy of
    without: tuple[tuple[np.ndarray, np.ndarray], ...] = ()  # per block: content-without-it hashes, counts
    blocks: tuple[np.ndarray, ...] = ()  # column groups that move together (:func:`blocks`)
    whole: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))
    runs: tuple = ()  # per cut (:func:`cuts`): (hashes, counts) of the run's content, and of the rest's

    @staticmethod
    def fit(sample: ChanceSample) -> "ChanceModel":
        values, counts, without, unseen = [], [], [], []
        terms = _additive(sample.values)
        total = terms.sum(axis=1, dtype=np.uint64)
        for j in range(sample.values.shape[1]):
            v, c = np.unique(sample.values[:, j], return_counts=True)
            values.append(v)
            counts.append(c)
            unseen.append(1.0 / _distinct(c))
        groups = blocks(sample.values)
        for g in groups:
            without.append(np.unique(total - terms[:, g].sum(axis=1, dtype=np.uint64), return_counts=True))
        runs = []
        for c in cuts(sample.values.shape[1]):
            part = terms[:, c].sum(axis=1, dtype=np.uint64)
            runs.append((np.unique(part, return_counts=True), np.unique(total - part, return_counts=True)))
        return ChanceModel(len(sample.keys), tuple(values), tuple(counts), unseen=tuple(unseen),
                           without=tuple(without), blocks=tuple(groups), whole=np.unique(total, return_counts=True),
                           runs=tuple(runs))

    def _shares(self, values: np.ndarray, same: np.ndarray) -> np.ndarray:
        """(k, m): the share of the sample holding each record's value in each column, the record and its
        exact copies left out (``same``: how many of them the sample holds); a value no other sampled
        record holds gets one over the column's estimated number of distinct values (:func:`_distinct`)."""
        shares = np.zeros(values.shape, dtype=np.float64)
        for j, (v, c) in enumerate(zip(self.values, self.counts)):
            count = _counts(v, c, values[:, j]) - same
            shares[:, j] = np.where(count >= 1, count / self.rows, self.unseen[j])
        return np.minimum(shares, 1.0)

    def expected_copies(self, values: np.ndarray, keys: np.ndarray, records: int) -> np.ndarray:
        """(k,) float64: how many other records among ``records`` are expected to hold each record's content
        (``values``: (k, m) column hashes) by chance. The largest of three estimates:

        * **independent columns**: ``(records - 1) * prod_c p_c(v_c)``;
        * **one fact apart**: for each block b of columns that move together (:func:`blocks`; most columns
          are a block of their own), the sample's records that equal this one outside b but not inside,
          scaled to the run's size, times the odds that such a record would hold this record's values in b:
          ``n_b * records / sample * p_b / (1 - p_b)``. Where the data is
          made of a few common patterns (customers of one neighbourhood, survey answers) such near-equal
          records abound and an exact match is expected; a copy of a record made of measured values has
          none;
        * **two parts**: for each run r of adjacent columns (:func:`cuts`) and the rest of the record,
          ``(records - 1) * q_r * q_rest``, where a part's ``q`` is the share of the sample holding that
          part's content whole (the record's own copies left out), or, when no other record does, the
          product over the part's blocks of their values' shares.
        """
        k = len(keys)
        if self.rows == 0 or k == 0:
            return np.full(k, np.inf if self.rows == 0 else 0.0)[:k]
        terms = _additive(values)
        total = terms.sum(axis=1, dtype=np.uint64)
        same = _counts(*self.whole, total)  # the record itself and its exact copies in the sample
        p = self._shares(values, same)
        independent = max(records - 1, 0) * np.exp2(np.log2(np.maximum(p, 1e-300)).sum(axis=1))
        scale = max(records - 1, 0) / self.rows
        apart = np.zeros(k)
        for g, (v, c) in zip(self.blocks, self.without):
            near = np.maximum(_counts(v, c, total - terms[:, g].sum(axis=1, dtype=np.uint64)) - same, 0)
            share = np.minimum(p[:, g].min(axis=1), 0.99)  # the block's value, at most as common as its rarest part
            apart = np.maximum(apart, near * scale * share / (1.0 - share))
        return np.maximum(np.maximum(independent, apart), self._two_parts(terms, same, p, records))

    def _two_parts(self, terms: np.ndarray, same: np.ndarray, p: np.ndarray, records: int) -> np.ndarray:
        m = terms.shape[1]
        out = np.zeros(len(terms))
        if not self.runs or m < 2:
            return out
        logp = np.log2(np.maximum(p, 1e-300))
        owner = np.zeros(m, dtype=np.int64)
        for b, g in enumerate(self.blocks):
            owner[g] = b
        total = terms.sum(axis=1, dtype=np.uint64)

        def share(cols: np.ndarray, hashes: np.ndarray, found: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
            whole = np.maximum(_counts(*found, hashes) - same, 0)
            fallback = np.zeros(len(terms))  # each block of the part at most as common as its rarest column
            for b in np.unique(owner[cols]):
                fallback += logp[:, cols[owner[cols] == b]].min(axis=1)
            return np.where(whole >= 1, whole / self.rows, np.exp2(fallback))

        for cols, (run, rest) in zip(cuts(m), self.runs):
            part = terms[:, cols].sum(axis=1, dtype=np.uint64)
            q = share(cols, part, run) * share(np.setdiff1d(np.arange(m), cols), total - part, rest)
            out = np.maximum(out, max(records - 1, 0) * q)
        return out
