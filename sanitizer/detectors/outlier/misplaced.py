"""``outlier``'s misplaced-value test: a categorical cell holding another column's value.

Two categorical columns whose values never overlap in ordinary use (a diamond's colour and its clarity;
an island and a sex) cannot exchange values: a colour column holding ``'VS2'``, common in the clarity
column and almost never in the colour column, was written into the wrong column or moved there. Counting
a column's own values cannot see this when the moved values repeat (each is then a "rare level"); comparing
columns can, because the detectors code a value by its text, the same in every column
(:mod:`sanitizer.representations.categorical`).

* **Apart pairs** (chosen once from the whole sample): two tested columns are *apart* unless they hold
  common values at comparable counts: the values (a null aside) both hold, each counted as the smaller of
  its two counts where that is at least ``SHARED_FRACTION`` of the larger, cover fewer than
  ``SHARED_ROWS`` of the rows where both columns have a value. Columns of one domain (a home and a work
  state, two yes/no answers) share their common values and are never apart; a few rows of a third
  column's values landing in both (by mistake or by design) do not make them one domain.
* **Strength** of a cell of column A holding value v, against a fold model's reference counts: for the
  apart column B holding v most often, ``log((count_B(v) + 1) / (count_A(v) + 1))`` nats (how many times
  more often v is B's than A's), when v is common in B (``MIN_HOME_ROWS`` reference rows); else 0.
* **Row signal**: the strongest cell's strength, plus its partner cell's when the two cells exchanged their
  values (A holds B's value and B holds A's). One cell alone needs its value about 150 times more often in
  the other column to pass ``threshold_category`` (5 nats); an exchange needs about 12 times on each side.

It is a rule about the table's layout, not a frequency estimate: its strength is a likelihood ratio
between the two columns, and the category threshold applies to it as to the other category tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sanitizer.detectors.outlier.categories import CategoryPlan, Counts
from sanitizer.representations.categorical import NULL_CODE

SHARED_FRACTION = 0.1
"""A value both columns hold counts toward their overlap when its smaller count is this share of the larger."""
SHARED_ROWS = 0.05
"""Two columns whose overlap covers this share of their rows are one domain (never apart)."""
MIN_HOME_ROWS = 5
"""A value counts as another column's only when that column holds it in at least this many reference rows."""


def apart_pairs(plan: CategoryPlan, codes: np.ndarray) -> tuple[tuple[int, int], ...]:
    """The tested column pairs (a, b) whose values do not overlap at comparable counts (see the module)."""
    counts = {}
    for j in plan.tested:
        u, c = np.unique(codes[:, j], return_counts=True)
        keep = u != NULL_CODE
        counts[j] = (u[keep], c[keep])
    present = codes != NULL_CODE
    out = []
    for i, a in enumerate(plan.tested):
        for b in plan.tested[i + 1:]:
            (ua, ca), (ub, cb) = counts[a], counts[b]
            both = int((present[:, a] & present[:, b]).sum())
            if not both:
                continue
            _, ia, ib = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
            small, large = np.minimum(ca[ia], cb[ib]), np.maximum(ca[ia], cb[ib])
            if small[small >= SHARED_FRACTION * large].sum() < SHARED_ROWS * both:
                out.append((a, b))
    return tuple(out)


@dataclass(frozen=True)
class Homes:
    """For one column: the values its apart columns hold, each with the apart column holding it most often."""

    values: np.ndarray  # sorted codes
    counts: np.ndarray  # their count in that column
    column: np.ndarray  # that column (a matrix column index)

    @staticmethod
    def of(partners: list[tuple[int, Counts]]) -> "Homes":
        if not partners:
            return Homes(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
        values = np.concatenate([c.values for _, c in partners]).astype(np.int64)
        counts = np.concatenate([c.counts for _, c in partners]).astype(np.int64)
        column = np.concatenate([np.full(len(c.values), j) for j, c in partners]).astype(np.int64)
        order = np.lexsort((-counts, values))  # by value, the largest count first
        values, counts, column = values[order], counts[order], column[order]
        first = np.ones(len(values), dtype=bool)
        first[1:] = values[1:] != values[:-1]
        keep = first & (counts >= MIN_HOME_ROWS) & (values != NULL_CODE)
        return Homes(values[keep], counts[keep], column[keep])

    def find(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(count in the home column, home column or -1) of each code."""
        if not len(self.values):
            return np.zeros(len(codes), np.int64), np.full(len(codes), -1)
        pos = np.minimum(np.searchsorted(self.values, codes), len(self.values) - 1)
        hit = self.values[pos] == codes
        return np.where(hit, self.counts[pos], 0), np.where(hit, self.column[pos], -1)


def homes_of(plan: CategoryPlan, pairs, columns: tuple[Counts, ...]) -> dict[int, Homes]:
    """Per tested column with an apart partner: its Homes, from a reference's per-column counts."""
    index = {j: i for i, j in enumerate(plan.tested)}
    partners: dict[int, list[tuple[int, Counts]]] = {}
    for a, b in pairs:
        partners.setdefault(a, []).append((b, columns[index[b]]))
        partners.setdefault(b, []).append((a, columns[index[a]]))
    return {j: Homes.of(p) for j, p in partners.items()}


@dataclass(frozen=True)
class Misplaced:
    """Per row: the signal (nats), its strongest cell's column, home column, strengths and counts."""

    nats: np.ndarray  # (m,)
    column: np.ndarray  # (m,) the strongest cell's column (-1: none)
    home: np.ndarray  # (m,) the column its value belongs to
    exchanged: np.ndarray  # (m,) bool: the home column's cell holds this column's value
    strength: np.ndarray  # (m, k) per cell
    home_count: np.ndarray  # (m, k)
    own_count: np.ndarray  # (m, k)
    home_column: np.ndarray  # (m, k)


def misplaced(plan: CategoryPlan, homes: dict[int, Homes], columns: tuple[Counts, ...],
              codes: np.ndarray) -> Misplaced:
    """The misplaced-value signal of the rows ``codes`` (m, k) against one reference (see the module)."""
    m, k = codes.shape
    strength = np.zeros((m, k))
    home_count = np.zeros((m, k), np.int64)
    own_count = np.zeros((m, k), np.int64)
    home_column = np.full((m, k), -1, np.int64)
    index = {j: i for i, j in enumerate(plan.tested)}
    for j, h in homes.items():
        count, column = h.find(codes[:, j])
        own = columns[index[j]].count(codes[:, j])
        strength[:, j] = np.where(column >= 0, np.log((count + 1.0) / (own + 1.0)), 0.0)
        home_count[:, j], own_count[:, j], home_column[:, j] = count, own, column
    np.maximum(strength, 0.0, out=strength)
    rows = np.arange(m)
    partner = np.maximum(home_column, 0)
    back = (home_column >= 0) & (home_column[rows[:, None], partner] == np.arange(k)[None, :])
    total = strength + np.where(back, strength[rows[:, None], partner], 0.0)
    best = np.argmax(total, axis=1) if k else np.zeros(m, np.int64)
    nats = total[rows, best] if k else np.zeros(m)
    some = nats > 0
    return Misplaced(nats, np.where(some, best, -1), np.where(some, home_column[rows, best], -1),
                     some & back[rows, best], strength, home_count, own_count, home_column)


def evidence_item(plan: CategoryPlan, found: Misplaced, r: int, reference_rows: int) -> dict | None:
    """The row's misplaced finding as an evidence item (None when it has none)."""
    j = int(found.column[r])
    if j < 0:
        return None
    b = int(found.home[r])
    name, home = plan.names[j], plan.names[b]
    item = {"feature": name, "value_from_row": name, "test": "misplaced", "nats": round(float(found.nats[r]), 3),
            "home": home, "count_in_home": int(found.home_count[r, j]), "count": int(found.own_count[r, j]),
            "reference_rows": reference_rows}
    if found.exchanged[r]:
        item["with"] = {"feature": home, "value_from_row": home, "count_in_home": int(found.home_count[r, b]),
                        "count": int(found.own_count[r, b])}
    return item
