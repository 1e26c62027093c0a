"""Distances between a baseline's values and a new data set's, one number per column and statistic.

All are 0 for identical distributions and grow with the change:

* :func:`js_distance`: the Jensen-Shannon distance (base 2, in [0, 1]) between two histograms, for
  numeric and date columns on the baseline's quantile bins (:func:`quantile_edges`, open-ended at both
  ends, so a value beyond the baseline's range still lands in a bin);
* :func:`normalised_wasserstein`: the Wasserstein-1 (earth mover's) distance between two samples, in
  units of the baseline's standard deviation (a shift of the whole column by half a standard deviation
  reads 0.5);
* :func:`aligned_levels` and :func:`linf_distance`: level or class counts side by side on the baseline's
  levels, and the largest change of one share;
* :func:`unseen_levels`: how many new rows hold a level the baseline never had.
"""

from __future__ import annotations

import numpy as np

from sanitizer.drift.profile import LevelCounts


def quantile_edges(baseline: np.ndarray, bins: int) -> np.ndarray:
    """The distinct inner edges that cut ``baseline`` into ``bins`` bins of (about) equal counts."""
    if len(baseline) == 0:
        return np.zeros(0)
    return np.unique(np.quantile(baseline, np.arange(1, bins) / bins))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the len(edges) + 1 bins (-inf, e0), [e0, e1), ..., [e_last, inf)."""
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) between two count vectors over the same bins."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(np.sqrt(max(0.0, (kl_p + kl_q) / 2)))


def scale_of(baseline: np.ndarray) -> float:
    """The baseline's standard deviation, or 1 (the column's own unit) for a constant column."""
    std = float(np.std(baseline)) if len(baseline) else 0.0
    return std if std > 0 else 1.0


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance between the empirical distributions of two samples."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    pooled = np.concatenate([a, b])
    order = np.argsort(pooled, kind="stable")
    in_a = np.zeros(len(pooled))
    in_a[: len(a)] = 1.0
    return float(wasserstein_labelled(pooled[order], in_a[order][None, :], len(a), len(b))[0])


def wasserstein_labelled(sorted_values: np.ndarray, in_a: np.ndarray, n_a: int, n_b: int) -> np.ndarray:
    """W1 for each row of ``in_a`` ((r, n) of 0/1: which of the sorted pooled values belong to the first
    sample)."""
    return wasserstein_gaps(in_a, n_a, n_b) @ np.diff(sorted_values)


def wasserstein_gaps(in_a: np.ndarray, n_a: int, n_b: int) -> np.ndarray:
    """(r, n - 1): for each row of ``in_a`` (which of n sorted values belong to the first sample), the
    absolute gap between the two samples' empirical distributions after each of the first n - 1 values; W1 is
    these gaps times the steps between the sorted values."""
    # with c_a the first sample's count among the k smallest values, c_b = k - c_a: one cumulative sum
    counts = np.cumsum(in_a, axis=1, dtype=np.int32)[:, :-1]
    gap = counts * (1.0 / n_a + 1.0 / n_b)
    gap -= np.arange(1, counts.shape[1] + 1) / n_b
    np.abs(gap, out=gap)
    return gap


def normalised_wasserstein(baseline: np.ndarray, new: np.ndarray) -> float:
    """W1 between the samples in units of the baseline's standard deviation."""
    return wasserstein(baseline, new) / scale_of(baseline)


def aligned_levels(baseline: LevelCounts, new: LevelCounts) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Counts of non-missing rows side by side, plus one last bucket ``(other)`` for the rest: (level
    names, baseline counts, new counts).

    The levels are those whose count is known on both sides: a level one profile did not keep is known
    to be absent only when that profile kept all its levels; otherwise it goes to ``(other)`` on both
    sides, so ``(other)`` means the same values in both.
    """
    names = [k for k in baseline.levels if new.other == 0 or k in new.levels]
    if baseline.other == 0:
        names += [k for k in new.levels if k not in baseline.levels]
    base = np.array([baseline.levels.get(k, 0) for k in names], dtype=np.float64)
    fresh = np.array([new.levels.get(k, 0) for k in names], dtype=np.float64)
    rest = (baseline.rows - baseline.missing - base.sum(), new.rows - new.missing - fresh.sum())
    return names + ["(other)"], np.append(base, rest[0]), np.append(fresh, rest[1])


def linf_distance(base: np.ndarray, new: np.ndarray) -> float:
    """The largest absolute change of one share between two count vectors."""
    if base.sum() <= 0 or new.sum() <= 0:
        return float("nan")
    return float(np.abs(base / base.sum() - new / new.sum()).max())


def unseen_levels(baseline: LevelCounts, new: LevelCounts, tail_bound: float) -> tuple[int, list[str]]:
    """New non-missing rows holding a level the baseline never had, and those levels (most frequent first).

    When the baseline kept all its levels, every other level is new (and so are the new profile's own
    ``other`` rows). When it summed its tail as ``other``, a level it did not keep may be in that tail,
    so only levels more frequent than any tail level could be in the new data (``tail_bound`` rows)
    count.
    """
    if baseline.other == 0:
        levels = [k for k in new.levels if k not in baseline.levels]
        return sum(new.levels[k] for k in levels) + new.other, levels
    levels = [k for k, n in new.levels.items() if k not in baseline.levels and n > tail_bound]
    return sum(new.levels[k] for k in levels), levels


def singletons(counts: LevelCounts) -> int:
    """Levels seen exactly once (their share estimates how often a fresh row holds a value never seen)."""
    return sum(1 for n in counts.levels.values() if n == 1)
