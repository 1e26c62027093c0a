"""``outlier``'s category signal: categorical values (and pairs of them) a clean row would rarely hold.

Each fold model counts, among its reference rows (the other folds' sample rows), the values of every
categorical column, of every column within each class that has its own reference, and of bounded pairs of
columns. Three tests, each on the probability that a clean row fails it, estimated from the reference
itself by Good-Turing (the share of reference rows whose value occurs exactly once, ``N1``: how often a
row held out of the reference brings a value the reference has never seen):

* **unseen** - the row's value of a column never occurs in the reference:
  ``p = (N1 + 1) / (n + 1)``. A closed column (three islands, no singletons) makes an unseen value strong
  evidence; a long-tailed one (many singletons) weak, so legitimate rare levels pass.
* **class** - the value never occurs among the reference rows of the row's class (``n`` and ``N1`` of that
  class's rows).
* **combination** - two columns' values each seen but never together (``N1`` of the pairs).

A missing value is one more level. The row's category signal is ``-log`` of the union bound over every test
at least as strong as the strongest one it fails (the summed ``p`` of the tests whose ``p`` is at most that
one's): a Bonferroni correction that counts only the tests able to give such evidence, so a table with many
long-tailed columns does not dilute one closed column's unseen value. Without categorical columns nothing
here runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_LEVELS = 4096
"""A column with more distinct values in the sample is not tested (its unseen values are common anyway;
bounds the state)."""
MAX_PAIRS = 28
"""At most this many column pairs are tested (those with the fewest level combinations first)."""
MAX_PAIR_CELLS = 4096
"""A pair is tested only when its columns' level counts multiply to at most this (bounds the state)."""
SMOOTH_ONCE = 3
"""See Counts.of."""
MIN_EXPECTED = 5.0
"""A value never seen in a class, or two values never seen together, count only where the reference leads one
to expect at least this many such rows (the value's share times the class's rows; the product of the two
values' shares times the rows): two rare values missing each other are no evidence."""


@dataclass(frozen=True)
class Counts:
    """How often each value (a code, or a pair key) occurs among ``rows`` reference rows."""

    values: np.ndarray  # sorted distinct values
    counts: np.ndarray  # int32, their counts
    rows: int
    singletons: int  # values seen exactly once (that the test would have caught, see CategoryReference.build)

    @staticmethod
    def of(values: np.ndarray, caught=None) -> "Counts":
        """``caught(values) -> bool mask``: which values, left out, the test would have caught (all of them by
        default). The values seen once count at most SMOOTH_ONCE times those seen twice, plus SMOOTH_ONCE: a long
        tail of genuine levels shows both, a burst of values seen once and none twice (typos, planted values) is
        no evidence that new values are common."""
        u, c = np.unique(values, return_counts=True)
        few = [u[c == r] for r in (1, 2)]
        once, twice = (len(v) if caught is None or not len(v) else int(caught(v).sum()) for v in few)
        return Counts(u, c.astype(np.int32), int(len(values)), int(min(once, SMOOTH_ONCE * (twice + 1))))

    def count(self, values: np.ndarray) -> np.ndarray:
        if len(self.values) == 0:
            return np.zeros(len(values), dtype=np.int32)
        pos = np.minimum(np.searchsorted(self.values, values), len(self.values) - 1)
        return np.where(self.values[pos] == values, self.counts[pos], 0)

    @property
    def p(self) -> float:
        """Good-Turing probability that a clean row brings a value not among these rows."""
        return (self.singletons + 1.0) / (self.rows + 1.0)


def pair_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One int64 per row for the pair of codes (codes are non-negative int32)."""
    return (a.astype(np.int64) << 32) | b.astype(np.int64)


@dataclass(frozen=True)
class CategoryPlan:
    """Which categorical columns and pairs are tested (chosen once from the whole sample)."""

    names: tuple[str, ...]  # every categorical column, in the batch's order
    tested: tuple[int, ...]  # columns with at most MAX_LEVELS distinct values
    pairs: tuple[tuple[int, int], ...]
    levels: tuple[int, ...]  # distinct values per column in the sample
    apart: tuple[tuple[int, int], ...] = ()  # column pairs of separate domains (outlier.misplaced)

    @staticmethod
    def of(codes: np.ndarray, names: tuple[str, ...]) -> "CategoryPlan":
        levels = tuple(int(len(np.unique(codes[:, j]))) for j in range(codes.shape[1]))
        tested = tuple(j for j, m in enumerate(levels) if m <= MAX_LEVELS)
        candidates = [(levels[a] * levels[b], a, b) for i, a in enumerate(tested) for b in tested[i + 1:]
                      if levels[a] >= 2 and levels[b] >= 2 and levels[a] * levels[b] <= MAX_PAIR_CELLS]
        pairs = tuple((a, b) for _, a, b in sorted(candidates)[:MAX_PAIRS])
        return CategoryPlan(tuple(names), tested, pairs, levels)


@dataclass(frozen=True)
class CategoryReference:
    """One fold model's counts: per tested column, per (class, tested column) and per tested pair."""

    columns: tuple[Counts, ...]
    classes: dict[str, tuple[Counts, ...]]
    pairs: tuple[Counts, ...]

    @staticmethod
    def build(plan: CategoryPlan, codes: np.ndarray, class_rows: dict[str, np.ndarray]) -> "CategoryReference":
        """From the reference rows' codes; ``class_rows``: class -> positions in ``codes`` of its rows."""
        # Each test's p counts the held-out rows that would fail THAT test and not a stronger one: a class's
        # values seen once in the class but also in other classes' rows, pairs seen once whose values are each
        # seen more than once (a value unseen in every class is the unseen test's).
        columns = tuple(Counts.of(codes[:, j]) for j in plan.tested)
        index = {j: i for i, j in enumerate(plan.tested)}
        n = len(codes)

        def expected_in(rows: int, column: Counts):
            return lambda v: (column.count(v) > 1) & (column.count(v) * rows / n >= MIN_EXPECTED)

        classes = {c: tuple(Counts.of(codes[rows, j], expected_in(len(rows), columns[i]))
                            for i, j in enumerate(plan.tested))
                   for c, rows in class_rows.items()}

        def both_common(keys, a, b):
            ca, cb = columns[index[a]].count(keys >> 32), columns[index[b]].count(keys & 0xFFFFFFFF)
            return (ca > 1) & (cb > 1) & (ca * (cb / n) >= MIN_EXPECTED)

        pairs = tuple(Counts.of(pair_keys(codes[:, a], codes[:, b]), lambda k, a=a, b=b: both_common(k, a, b))
                      for a, b in plan.pairs)
        return CategoryReference(columns, classes, pairs)

    def tests(self, plan: CategoryPlan, label: str | None, codes: np.ndarray):
        """Every test of the rows ``codes`` (m, k) against this reference (``label``: their class, when it has
        its own reference): a list of (kind, column, other column or -1, its Counts, fails (m,) bool, count (m,))."""
        out = []
        counts = []
        for i, j in enumerate(plan.tested):
            ref = self.columns[i]
            count = ref.count(codes[:, j])
            counts.append(count)
            out.append(("unseen", j, -1, ref, count == 0, count))
            if label is not None:
                cls = self.classes[label][i]
                expected = count * (cls.rows / ref.rows) >= MIN_EXPECTED
                out.append(("class", j, -1, cls, (cls.count(codes[:, j]) == 0) & expected, count))
        index = {j: i for i, j in enumerate(plan.tested)}
        for (a, b), ref in zip(plan.pairs, self.pairs):
            count = ref.count(pair_keys(codes[:, a], codes[:, b]))
            expected = counts[index[a]] * (counts[index[b]] / ref.rows) >= MIN_EXPECTED
            out.append(("combination", a, b, ref, (count == 0) & expected, count))
        return out


def category_nats(tests, m: int) -> np.ndarray:
    """(m,) the category signal: -log of the union bound over the tests at least as strong as the row's
    strongest failed one (0 where it fails none): their held-out failure rates (values seen once over rows)
    summed, plus one pseudo-count for the lot (a test that never failed among n rows is not thereby certain
    to pass)."""
    if not tests:
        return np.zeros(m)
    p = np.array([t[3].p for t in tests])
    fails = np.stack([t[4] for t in tests], axis=1)  # (m, tests)
    strongest = np.where(fails, p[np.newaxis, :], np.inf).min(axis=1)
    order = np.argsort(p, kind="stable")
    rate = np.array([t[3].singletons / (t[3].rows + 1.0) for t in tests])[order]
    floor = np.array([1.0 / (t[3].rows + 1.0) for t in tests])[order]
    bound = np.cumsum(rate) + np.maximum.accumulate(floor)
    union = bound[np.maximum(np.searchsorted(p[order], strongest, side="right") - 1, 0)]
    with np.errstate(divide="ignore"):
        nats = np.where(np.isfinite(strongest), -np.log(np.minimum(union, 1.0)), 0.0)
    return np.maximum(nats, 0.0)


def unusual_values(tests, plan: CategoryPlan, state_reference: "CategoryReference", label: str | None,
                   r: int, top: int) -> list[dict]:
    """Evidence items for row ``r`` of a test group: its failed tests, the strongest first (at most ``top``).
    Each names the column and asks for the row's value in words (``value_from_row``)."""
    failed = sorted((t for t in tests if t[4][r]), key=lambda t: t[3].p)[:top]
    items = []
    for kind, j, other, ref, _, count in failed:
        name = plan.names[j]
        item = {"feature": name, "value_from_row": name, "test": kind, "nats": round(float(-np.log(ref.p)), 3)}
        if kind == "class":
            cls = state_reference.classes[label][plan.tested.index(j)]
            item.update({"class": label, "reference_rows": cls.rows, "count": 0,
                         "count_other_classes": int(count[r])})
        elif kind == "combination":
            item.update({"reference_rows": state_reference.columns[0].rows, "count": 0,
                         "with": {"feature": plan.names[other], "value_from_row": plan.names[other]}})
        else:
            item.update({"reference_rows": state_reference.columns[0].rows, "count": 0})
        items.append(item)
    return items


def category_summary(plan: CategoryPlan, reference: CategoryReference, limit: int = 50) -> dict:
    """Per tested column (at most ``limit``): reference levels and values seen once; the pairs tested."""
    columns = {}
    for i, j in enumerate(plan.tested[:limit]):
        ref = reference.columns[i]
        columns[plan.names[j]] = {"levels": int(len(ref.values)), "seen_once": ref.singletons,
                                  "unseen_nats": round(float(-np.log(ref.p)), 3)}
    return {
        "reference_rows": reference.columns[0].rows if reference.columns else 0,
        "columns": columns,
        "not_tested": [plan.names[j] for j in range(len(plan.names)) if j not in plan.tested][:limit],
        "pairs": [[plan.names[a], plan.names[b]] for a, b in plan.pairs],
        "apart_pairs": [[plan.names[a], plan.names[b]] for a, b in plan.apart[:limit]],
        "bounds": {"max_levels": MAX_LEVELS, "max_pairs": MAX_PAIRS, "max_pair_cells": MAX_PAIR_CELLS},
    }
