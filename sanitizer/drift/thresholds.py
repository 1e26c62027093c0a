"""How large a statistic gets when both data sets come from one distribution, for their sizes.

Each function returns the value a statistic exceeds with probability at most ``alpha`` when the baseline
and the new data are two samples of one distribution (the *null threshold*), so small samples get wide
thresholds (1,000 rows against 10 never alarm on noise) and large ones narrow thresholds:

* binned Jensen-Shannon: the two-sample G statistic on the bins is ``8 * n1*n2/(n1+n2) * JSD`` (JSD in
  nats) to second order, and is chi-square with (occupied bins - 1) degrees of freedom;
* Wasserstein: a seeded permutation null on the two samples (one set of re-splits for every column of
  the same sample sizes), its tail read from a gamma distribution
  with the permutations' mean and variance (a norm of a Gaussian process has a lighter tail, so the
  threshold errs high);
* shares (levels, classes, missing values): the normal approximation of a difference of proportions,
  for L-infinity at the largest variance among the levels and shared over the levels (Bonferroni);
* new categories: the share of fresh rows expected to hold a value the baseline never had
  (Good-Turing: the baseline's singletons) plus its noise; where the baseline summed its tail, the
  most rows a tail level reaches by chance (:func:`tail_bound`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats

from sanitizer.drift.profile import LevelCounts
from sanitizer.drift.statistics import scale_of, singletons, wasserstein_gaps


def harmonic_size(n1: float, n2: float) -> float:
    """n1*n2/(n1+n2): the effective size of a two-sample comparison."""
    return n1 * n2 / (n1 + n2) if n1 > 0 and n2 > 0 else 0.0


def js_threshold(n1: int, n2: int, occupied_bins: int, alpha: float) -> float:
    """The JS distance (base 2) two samples of sizes n1 and n2 from one distribution exceed with
    probability ``alpha``, on ``occupied_bins`` bins."""
    size = harmonic_size(n1, n2)
    if size == 0:
        return math.inf
    df = max(1, occupied_bins - 1)
    return math.sqrt(stats.chi2.isf(alpha, df) / (8 * size * math.log(2)))


def js_p_value(distance: float, n1: int, n2: int, occupied_bins: int) -> float:
    size = harmonic_size(n1, n2)
    if size == 0 or not math.isfinite(distance):
        return 1.0
    return float(stats.chi2.sf(8 * size * math.log(2) * distance ** 2, max(1, occupied_bins - 1)))


def wasserstein_null(baseline: np.ndarray, new: np.ndarray, permutations: int, seed: int) -> tuple[float, float]:
    """Mean and variance of the normalised W1 between random re-splits of the pooled samples."""
    pooled = np.sort(np.concatenate([baseline, new]))
    null = null_gaps(len(baseline), len(new), permutations, seed) @ np.diff(pooled) / scale_of(baseline)
    return float(null.mean()), float(null.var())


@functools.lru_cache(maxsize=4)
def null_gaps(n_a: int, n_b: int, permutations: int, seed: int) -> np.ndarray:
    """((permutations, n_a + n_b - 1), read-only) the gaps between the two empirical distributions of
    random re-splits of ``n_a + n_b`` sorted values, at each step between neighbours: W1 of a re-split is
    its row times the steps (:func:`~sanitizer.drift.statistics.wasserstein_labelled`). A re-split says which
    ranks go to which sample, whatever the values, so every column of one pair of sample sizes shares them
    (each column's null is still the exact permutation null) and only a product is left per column."""
    rng = np.random.default_rng([seed, n_a, n_b, 0x57A7])
    labels = np.zeros((permutations, n_a + n_b), dtype=np.int8)
    labels[:, :n_a] = 1
    labels = rng.permuted(labels, axis=1)
    gaps = wasserstein_gaps(labels, n_a, n_b)
    gaps.setflags(write=False)
    return gaps


def gamma_tail(mean: float, var: float, alpha: float) -> float:
    """The upper ``alpha`` quantile of the gamma distribution with this mean and variance."""
    if mean <= 0:
        return 0.0
    if var <= 0:
        return mean
    return float(stats.gamma.isf(alpha, mean ** 2 / var, scale=var / mean))


def gamma_p_value(value: float, mean: float, var: float) -> float:
    if mean <= 0 or var <= 0 or not math.isfinite(value):
        return 1.0 if not value > mean else 0.0
    return float(stats.gamma.sf(value, mean ** 2 / var, scale=var / mean))


def proportion_threshold(k1: float, n1: float, k2: float, n2: float, alpha: float) -> float:
    """The |difference| of two shares k1/n1 and k2/n2 exceeded with probability ``alpha`` (two-sided)
    when both come from one share (estimated pooled)."""
    if n1 <= 0 or n2 <= 0:
        return math.inf
    p = (k1 + k2) / (n1 + n2)
    return float(stats.norm.isf(alpha / 2) * math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2)))


def linf_threshold(base: np.ndarray, new: np.ndarray, alpha: float) -> float:
    """The L-infinity distance between share vectors exceeded with probability at most ``alpha``."""
    n1, n2 = float(base.sum()), float(new.sum())
    if n1 <= 0 or n2 <= 0:
        return math.inf
    pooled = (base + new) / (n1 + n2)
    levels = max(1, int((pooled > 0).sum()))
    widest = float((pooled * (1 - pooled)).max())
    return float(stats.norm.isf(alpha / (2 * levels)) * math.sqrt(widest * (1 / n1 + 1 / n2)))


def expected_unseen(baseline: LevelCounts) -> float:
    """The share of fresh rows expected to hold a value the baseline never had (Good-Turing: the share
    of its singletons, one added); 0 when the baseline summed its tail, as then only levels too frequent
    for that tail count (:func:`tail_bound`)."""
    if baseline.other:
        return 0.0
    return (singletons(baseline) + 1) / (baseline.rows - baseline.missing + 1)


def unseen_margin(expected: float, n_baseline: int, n_new: int, alpha: float) -> float:
    """How far above ``expected`` the share of such rows among n_new rows goes by chance (one-sided)."""
    if n_baseline <= 0 or n_new <= 0:
        return math.inf
    return float(stats.norm.isf(alpha) * math.sqrt(expected * (1 - expected) * (1 / n_new + 1 / n_baseline)))


def tail_bound(baseline: LevelCounts, n_new: int, candidates: int, alpha: float) -> float:
    """The most rows one level of the baseline's summed tail (each at most as frequent as its rarest
    kept level) reaches among n_new rows by chance, shared over ``candidates`` levels (Poisson, normal
    approximation)."""
    n_baseline = baseline.rows - baseline.missing
    if not baseline.levels or n_baseline <= 0:
        return 0.0
    ratio = n_new / n_baseline
    expected = min(baseline.levels.values()) * ratio
    z = stats.norm.isf(alpha / max(1, candidates))
    return float(expected + z * math.sqrt(expected * (1 + ratio)) + 1)
