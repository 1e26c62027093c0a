"""``outlier``: records that do not look like the rest of their class or of the data.

Two signals, each learned from the bounded sample:

* **tail** - for every feature, the two-sided empirical tail probability of the
  value among the sample rows of the record's own class (an ECOD-style score:
  mean over features of ``-log p``). Catches a record that is ordinary for the
  data set but extreme for its class. A class with too few sample rows (fewer
  than ``min_class_rows`` in either fold), or ``per_class: false``, uses the
  whole sample as its reference instead.
* **isolation forest** - a global multivariate signal: records that random
  axis-aligned splits isolate quickly are unusual even when no single feature is.

Cross-fitting keeps the detector from grading its own homework: the sample is
split into two folds by ``hash(record id)``, one model is fitted per fold, and
every record (in the sample or not) is scored by the model of the *other* fold.
The sample's out-of-fold scores then calibrate the thresholds honestly: each
signal becomes a robust z-score (median / MAD of its out-of-fold scores; per
class for the tail), the two are averaged, and the average is robustly
standardised once more. The final score reads as "how many robust standard
deviations above a typical record"; a record is flagged when it exceeds
``threshold_z``. Because the median and MAD ignore the tails, poison in the
sample barely moves the threshold, and a clean data set does not get a fixed
share flagged.

Evidence for a flagged record: the features most extreme for its reference
(value and the reference's 1st-99th percentile range) and each signal's z-score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sanitizer.config import check_int, check_number
from sanitizer.detectors.base import Batch, Scores, Skipped
from sanitizer.records import salted

MIN_ROWS = 40
_FOLD_SALT = "outlier-fold"


@dataclass(frozen=True)
class OutlierParams:
    enabled: bool = True
    threshold_z: float = 5.0
    """Flag a record whose final robust z-score exceeds this."""
    per_class: bool = True
    """Use the class-conditional tail signal (classes with too few sample rows fall back to global)."""
    min_class_rows: int = 30
    """A class needs this many sample rows per fold for its own reference."""
    n_estimators: int = 100
    max_samples: int = 256
    grid_size: int = 512
    """Reference quantiles kept per feature (bounds state size and scoring cost)."""
    top_features: int = 3

    def validate(self) -> None:
        check_number("detectors.outlier.threshold_z", self.threshold_z, low=0.5, high=1000)
        check_int("detectors.outlier.min_class_rows", self.min_class_rows, low=5)
        check_int("detectors.outlier.n_estimators", self.n_estimators, low=1, high=2000)
        check_int("detectors.outlier.max_samples", self.max_samples, low=8, high=100_000)
        check_int("detectors.outlier.grid_size", self.grid_size, low=16, high=100_000)
        check_int("detectors.outlier.top_features", self.top_features, low=0, high=100)


@dataclass(frozen=True)
class StepIndex:
    """``searchsorted(breaks, x, "right")`` without a branchy binary search.

    The range of the breakpoints is cut into equal-width bins. ``lut[k + 1]``
    counts the breakpoints in bins before bin ``k``, and at most ``extra``
    breakpoints share a bin, so the count for x is ``lut[bin(x) + 1]`` plus at
    most ``extra`` vectorised compare-and-step passes. Exact: bin() is monotone,
    so a breakpoint in an earlier bin is always below x and one in a later bin
    always above. Falls back to ``searchsorted`` when the breakpoints are too
    clumped for a small table (``extra == -1``).
    """

    breaks: np.ndarray
    padded: np.ndarray  # breaks + [NaN]
    lo: float
    inv_width: float
    bins: int
    lut: np.ndarray
    extra: int

    MAX_EXTRA: ClassVar[int] = 4

    @staticmethod
    def build(breaks: np.ndarray) -> "StepIndex":
        m = len(breaks)
        lo, hi = float(breaks[0]), float(breaks[-1])
        padded = np.append(breaks, np.nan)  # NaN <= x is never true: the step stops at the end
        for factor in (4, 32):
            bins = int(min(max(factor * m, 16), 1 << 16))
            with np.errstate(over="ignore", divide="ignore"):
                inv_width = bins / (hi - lo) if hi > lo else 0.0
            if not np.isfinite(inv_width):  # a range of a few ulps: one bin, stepped through
                inv_width = 0.0
            kb = StepIndex._bin(breaks, lo, inv_width, bins)
            runs = np.diff(np.flatnonzero(np.r_[True, kb[1:] != kb[:-1], True]))
            extra = int(runs.max()) if len(runs) else 0
            if extra <= StepIndex.MAX_EXTRA:
                lut = np.searchsorted(kb, np.arange(-1, bins + 1), side="left").astype(np.int64)
                return StepIndex(breaks, padded, lo, inv_width, bins, lut, extra)
        return StepIndex(breaks, padded, lo, 0.0, 0, np.zeros(0, np.int64), -1)

    @staticmethod
    def _bin(x: np.ndarray, lo: float, inv_width: float, bins: int) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            k = np.floor((x - lo) * inv_width)
        if inv_width == 0.0:
            k = np.nan_to_num(k, nan=0.0)  # inf * 0 for an infinite x in a one-bin index
        return np.clip(k, -1, bins).astype(np.int64)

    def count_le(self, x: np.ndarray) -> np.ndarray:
        if self.extra < 0:
            return np.searchsorted(self.breaks, x, side="right")
        idx = self.lut[self._bin(x, self.lo, self.inv_width, self.bins) + 1]
        for _ in range(self.extra):
            idx += self.padded[idx] <= x
        return idx


@dataclass(frozen=True)
class TailReference:
    """Per-feature empirical distributions as step functions of ``-log p``.

    For feature j, ``-log p(x)`` (two-sided tail probability of x among the
    reference values, smoothed so p >= 1/(n+1)) is piecewise constant: one value
    exactly at each reference value, another between two neighbouring ones. It
    is stored as sorted breakpoints ``[u0, next(u0), u1, next(u1), ...]`` and a
    value table, so scoring a column is one ``StepIndex`` lookup and one gather.
    """

    index: tuple[StepIndex, ...]  # per feature: 2m sorted breakpoints, indexed
    table: tuple[np.ndarray, ...]  # per feature: 2m+1 values of -log p
    low: np.ndarray  # (d,) 1st percentile, for evidence
    high: np.ndarray  # (d,) 99th percentile, for evidence
    min: np.ndarray  # (d,) smallest reference value
    max: np.ndarray  # (d,) largest reference value
    scale: np.ndarray  # (d,) an eighth of the reference range: beyond the range, -log p grows by 1 per scale

    @staticmethod
    def build(X: np.ndarray, grid_size: int, floor_scale: np.ndarray | None = None) -> "TailReference":
        """Reference from rows X. ``floor_scale`` bounds the range from below (a feature that
        is constant within a class borrows the whole sample's range)."""
        n, d = X.shape
        srt = np.sort(X, axis=0)
        if n > grid_size:
            srt = srt[((np.arange(grid_size) + 0.5) * n / grid_size).astype(np.int64)]
        m_total = srt.shape[0]
        breaks, tables = [], []
        for j in range(d):
            col = srt[:, j]
            first = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])  # column is sorted: runs of equal values
            u = col[first]
            counts = np.diff(np.r_[first, len(col)])
            le = np.cumsum(counts)  # reference count <= u_i
            lt = le - counts  # reference count < u_i
            at = np.minimum(le, m_total - lt)  # tail count exactly at u_i
            between = np.minimum(le, m_total - le)  # tail count strictly between u_i and u_{i+1}
            tail = np.empty(2 * len(u) + 1)
            tail[0] = 0  # below the smallest reference value
            tail[1::2] = at
            tail[2::2] = between
            p = np.minimum(2.0 * (tail + 1.0), m_total + 1.0) / (m_total + 1.0)
            b = np.empty(2 * len(u))
            b[0::2] = u
            b[1::2] = np.nextafter(u, np.inf)
            breaks.append(b)
            tables.append(-np.log(p))
        q = np.quantile(X, [0.01, 0.10, 0.5, 0.90, 0.99], axis=0) if n else np.zeros((5, d))
        scale = (srt[-1] - srt[0]) / 8 if len(srt) else np.zeros(d)  # an eighth of the reference range
        if floor_scale is not None:
            scale = np.maximum(scale, floor_scale)
        scale = np.where(scale > 0, scale, 1e-3 * np.maximum(np.abs(q[2]), 1.0))
        return TailReference(
            tuple(StepIndex.build(b) for b in breaks), tuple(tables), q[0], q[4], srt[0].copy(), srt[-1].copy(), scale
        )

    def _column(self, j: int, x: np.ndarray) -> np.ndarray:
        """-log p of one feature; past the reference range it keeps growing linearly with the distance
        (by one per eighth of the reference range), so a value a million spreads out is not scored like the maximum."""
        value = self.table[j][self.index[j].count_le(x)]
        beyond = np.maximum(x - self.max[j], 0.0) + np.maximum(self.min[j] - x, 0.0)
        return value + beyond / self.scale[j]

    def mean_neglogp(self, X: np.ndarray) -> np.ndarray:
        """(n,) mean over features of -log p."""
        total = np.zeros(X.shape[0])
        for j in range(X.shape[1]):
            total += self._column(j, X[:, j])
        return total / max(X.shape[1], 1)

    def neglogp(self, X: np.ndarray) -> np.ndarray:
        """(n, d) of -log p per feature (for evidence on a few rows)."""
        return np.stack(
            [self._column(j, X[:, j]) for j in range(X.shape[1])],
            axis=1,
        )


@dataclass(frozen=True)
class FoldModel:
    global_ref: TailReference
    class_refs: dict[str, TailReference]
    forest: Any  # sklearn IsolationForest


@dataclass(frozen=True)
class Robust:
    center: float
    scale: float

    @staticmethod
    def of(values: np.ndarray) -> "Robust":
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return Robust(0.0, 1.0)
        center = float(np.median(values))
        scale = 1.4826 * float(np.median(np.abs(values - center)))
        if scale < 1e-9:
            scale = float(np.std(values))
        return Robust(center, scale if scale > 1e-9 else 1.0)

    def z(self, values: np.ndarray) -> np.ndarray:
        return (values - self.center) / self.scale


@dataclass(frozen=True)
class OutlierState:
    params: OutlierParams
    folds: tuple[FoldModel, FoldModel]
    tail_global: Robust
    tail_by_class: dict[str, Robust]
    forest: Robust
    combined: Robust
    feature_names: tuple[str, ...]
    sample_rows: int
    classes_with_own_reference: int


class OutlierDetector:
    name: ClassVar[str] = "outlier"
    needs: ClassVar[frozenset[str]] = frozenset({"features"})
    Params = OutlierParams

    @staticmethod
    def fold_of(keys: np.ndarray) -> np.ndarray:
        return (salted(keys, _FOLD_SALT) & np.uint64(1)).astype(np.int64)

    def fit(self, sample: Batch, params: OutlierParams, seed: int):
        from sklearn.ensemble import IsolationForest

        if sample.n < MIN_ROWS:
            return Skipped(f"needs at least {MIN_ROWS} valid rows in the sample, got {sample.n}")
        if sample.X.shape[1] == 0:
            return Skipped("no feature columns")
        fold = self.fold_of(sample.keys)
        if min(np.sum(fold == 0), np.sum(fold == 1)) < MIN_ROWS // 2:
            return Skipped(f"needs at least {MIN_ROWS // 2} sample rows in each cross-fitting fold")
        groups = class_groups(sample.labels)
        # A class gets its own reference only when both folds hold enough of its rows, so every
        # record of the class is judged the same way whichever fold scores it.
        own = set()
        if params.per_class:
            for c, members in groups.items():
                f = fold[members]
                if min(np.sum(f == 0), np.sum(f == 1)) >= params.min_class_rows:
                    own.add(c)
        models = []
        for f in (0, 1):
            X = sample.X[fold == f]
            global_ref = TailReference.build(X, params.grid_size)
            class_refs = {
                c: TailReference.build(sample.X[groups[c][fold[groups[c]] == f]], params.grid_size, global_ref.scale)
                for c in sorted(own)
            }
            forest = IsolationForest(
                n_estimators=params.n_estimators,
                max_samples=min(params.max_samples, len(X)),
                random_state=(seed * 2 + f) % (2**32),
            ).fit(X.astype(np.float32))
            models.append(FoldModel(global_ref, class_refs, forest))
        folds = (models[0], models[1])

        # Out-of-fold scores of the sample calibrate every threshold.
        other = 1 - fold
        tail, iso = _signals_threaded(folds, sample.X, sample.labels, other)
        global_tail = np.empty(sample.n)
        for f in (0, 1):
            rows = other == f
            global_tail[rows] = folds[f].global_ref.mean_neglogp(sample.X[rows])
        state = OutlierState(
            params=params,
            folds=folds,
            tail_global=Robust.of(global_tail),
            tail_by_class={c: Robust.of(tail[groups[c]]) for c in sorted(own)},
            forest=Robust.of(iso),
            combined=Robust(0.0, 1.0),
            feature_names=sample.feature_names,
            sample_rows=sample.n,
            classes_with_own_reference=len(own),
        )
        return _replace(state, combined=Robust.of(_combine(state, tail, iso, groups)))

    def score(self, batch: Batch, state: OutlierState) -> Scores:
        params = state.params
        if batch.n == 0:
            return Scores(np.zeros(0), np.zeros(0, dtype=bool), params.threshold_z)
        fold = 1 - self.fold_of(batch.keys)  # scored by the model that did not see the record
        groups = class_groups(batch.labels)
        tail, iso = _signals(state.folds, batch.X, groups, fold)
        score = state.combined.z(_combine(state, tail, iso, groups))
        flagged = score > params.threshold_z
        evidence = _evidence(state, batch, np.flatnonzero(flagged), fold, tail, iso)
        return Scores(score, flagged, params.threshold_z, evidence)

    def summary(self, state: OutlierState) -> dict[str, Any]:
        return {
            "threshold": state.params.threshold_z,
            "score": "robust z-score of the mean of the tail and isolation-forest z-scores",
            "sample_rows": state.sample_rows,
            "classes_with_own_reference": state.classes_with_own_reference,
            "calibration": {
                "combined_median": state.combined.center,
                "combined_scale": state.combined.scale,
            },
        }


def _replace(state: OutlierState, **changes) -> OutlierState:
    import dataclasses

    return dataclasses.replace(state, **changes)


def class_groups(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Class name -> row indices, computed once per batch (object comparisons hold the GIL)."""
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    groups = {}
    for k, name in enumerate(uniques):
        lo, hi = np.searchsorted(sorted_codes, [k, k + 1])
        groups[str(name)] = order[lo:hi]
    return groups


def _signals(folds, X, groups, fold_index):
    """Tail signal (own class's reference, else the global one) and isolation-forest signal.

    Each row is scored by ``folds[fold_index[row]]``.
    """
    n = len(X)
    tail = np.empty(n)
    iso = np.empty(n)
    covered = np.zeros(n, dtype=bool)
    for c, members in groups.items():
        for f in (0, 1):
            ref = folds[f].class_refs.get(c)
            if ref is None:
                continue
            rows = members[fold_index[members] == f]
            if len(rows):
                tail[rows] = ref.mean_neglogp(X[rows])
                covered[rows] = True
    for f in (0, 1):
        in_fold = fold_index == f
        rows = np.flatnonzero(in_fold)
        if len(rows) == 0:
            continue
        iso[rows] = -folds[f].forest.score_samples(X[rows].astype(np.float32))
        rest = np.flatnonzero(in_fold & ~covered)
        if len(rest):
            tail[rest] = folds[f].global_ref.mean_neglogp(X[rest])
    return tail, iso


def _signals_threaded(folds, X, labels, fold_index, chunk_rows: int = 16_384):
    """_signals over row chunks on all cores (numpy and the trees release the GIL)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    n = len(X)
    bounds = list(range(0, n, chunk_rows)) + [n]
    spans = list(zip(bounds[:-1], bounds[1:]))

    def work(span):
        a, b = span
        return _signals(folds, X[a:b], class_groups(labels[a:b]), fold_index[a:b])

    if len(spans) <= 1:
        return work((0, n))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        parts = list(pool.map(work, spans))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(2))


def _tail_z(state: OutlierState, tail: np.ndarray, groups) -> np.ndarray:
    z = state.tail_global.z(tail)
    for c, members in groups.items():
        robust = state.tail_by_class.get(c)
        if robust is not None:
            z[members] = robust.z(tail[members])
    return z


def _combine(state: OutlierState, tail, iso, groups) -> np.ndarray:
    return 0.5 * (_tail_z(state, tail, groups) + state.forest.z(iso))


def _evidence(state: OutlierState, batch: Batch, rows: np.ndarray, fold, tail, iso) -> dict[int, dict[str, Any]]:
    """Evidence for the flagged rows, computed per (fold, reference) group in one vectorised pass."""
    out: dict[int, dict[str, Any]] = {}
    if len(rows) == 0:
        return out
    k = state.params.top_features
    groups: dict[tuple[int, str | None], list[int]] = {}
    for i in rows:
        label = str(batch.labels[i])
        f = int(fold[i])
        groups.setdefault((f, label if label in state.folds[f].class_refs else None), []).append(int(i))
    for (f, label), members in groups.items():
        model = state.folds[f]
        ref = model.class_refs[label] if label is not None else model.global_ref
        robust = state.tail_by_class[label] if label is not None else state.tail_global
        idx = np.asarray(members)
        contrib = ref.neglogp(batch.X[idx])
        top = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        for r, i in enumerate(members):
            out[i] = {
                "reference": f"class {label}" if label is not None else "all classes",
                "extreme_features": [
                    {
                        "feature": state.feature_names[j],
                        "value": float(batch.X[i, j]),
                        "typical_range": [float(ref.low[j]), float(ref.high[j])],
                        "neg_log_tail_p": round(float(contrib[r, j]), 3),
                    }
                    for j in top[r]
                    if contrib[r, j] > 0
                ],
                "signals_z": {
                    "tail": round(float(robust.z(tail[i])), 3),
                    "isolation_forest": round(float(state.forest.z(iso[i])), 3),
                },
            }
    return out
