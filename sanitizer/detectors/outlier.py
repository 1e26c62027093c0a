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

from concurrent.futures import ThreadPoolExecutor

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
class StepTable:
    """Many step functions (one per feature), evaluated for a whole (n, d) block in a few passes.

    Feature j's function is given by sorted breakpoints ``b_j`` and values
    ``v_j`` (``len(b_j) + 1`` of them): ``f_j(x) = v_j[searchsorted(b_j, x, "right")]``.
    A branchy binary search per value is slow and, run feature by feature,
    holds the GIL for many small calls. Instead each feature's breakpoint range
    is cut into equal-width bins; ``lut`` says how many breakpoints lie in
    earlier bins, and at most ``steps`` breakpoints share a bin, so the count for
    x is one lookup plus ``steps`` vectorised compare-and-step passes over the
    whole block. Exact: the bin of x is monotone in x, so a breakpoint in an
    earlier bin is always below x and one in a later bin always above. Features
    whose breakpoints are too clumped for a small table use ``searchsorted``.
    """

    lo: np.ndarray  # (d,)
    inv_width: np.ndarray  # (d,)
    bins: np.ndarray  # (d,)
    lut_offset: np.ndarray  # (d,) where feature j's lut starts
    lut: np.ndarray  # flat; entries are positions in ``padded``
    padded: np.ndarray  # flat; each feature's breakpoints followed by one NaN (NaN <= x is never true)
    value_shift: np.ndarray  # (d,) value index = padded position + shift
    values: np.ndarray  # flat; each feature's len(b_j) + 1 values
    steps: int
    fallback: tuple[int, ...]  # features looked up with searchsorted

    MAX_STEPS: ClassVar[int] = 4

    @staticmethod
    def build(breaks: list[np.ndarray], values: list[np.ndarray]) -> "StepTable":
        d = len(breaks)
        lo, inv_width, bins = np.zeros(d), np.zeros(d), np.zeros(d, dtype=np.int64)
        luts, padded, shifts, fallback = [], [], np.zeros(d, dtype=np.int64), []
        lut_offset = np.zeros(d, dtype=np.int64)
        position = lut_pos = value_pos = 0
        steps = 0
        for j, (b, v) in enumerate(zip(breaks, values)):
            lo[j] = b[0]
            lut_offset[j] = lut_pos
            shifts[j] = value_pos - position
            chosen = None
            for factor in (4, 32):
                n_bins = int(min(max(factor * len(b), 16), 1 << 16))
                with np.errstate(over="ignore", divide="ignore"):
                    w = n_bins / (b[-1] - b[0]) if b[-1] > b[0] else 0.0
                if not np.isfinite(w):  # a range of a few ulps: one bin, stepped through
                    w = 0.0
                kb = StepTable._bins(b, b[0], w, n_bins)
                runs = np.diff(np.flatnonzero(np.r_[True, kb[1:] != kb[:-1], True]))
                extra = int(runs.max()) if len(runs) else 0
                if extra <= StepTable.MAX_STEPS:
                    chosen = (n_bins, w, kb, extra)
                    break
            if chosen is None:
                fallback.append(j)
                chosen = (0, 0.0, np.zeros(len(b), dtype=np.int64), 0)
            n_bins, w, kb, extra = chosen
            bins[j], inv_width[j] = n_bins, w
            steps = max(steps, extra)
            luts.append(np.searchsorted(kb, np.arange(-1, n_bins + 1), side="left").astype(np.int64) + position)
            padded.append(np.append(b, np.nan))
            lut_pos += n_bins + 2
            position += len(b) + 1
            value_pos += len(v)
        return StepTable(
            lo, inv_width, bins, lut_offset, np.concatenate(luts), np.concatenate(padded), shifts,
            np.concatenate(values), steps, tuple(fallback),
        )

    @staticmethod
    def _bins(x, lo, inv_width, bins):
        with np.errstate(over="ignore", invalid="ignore"):
            k = np.floor((x - lo) * inv_width)
        if not np.isfinite(k).all():  # only an infinite x (never a valid row) gets here
            k = np.nan_to_num(k, nan=0.0, posinf=np.iinfo(np.int32).max, neginf=-1.0)
        return np.clip(k, -1, bins).astype(np.int64)

    def lookup(self, X: np.ndarray) -> np.ndarray:
        """(n, d) of f_j(X[:, j])."""
        idx = self.lut[self._bins(X, self.lo, self.inv_width, self.bins) + 1 + self.lut_offset]
        for _ in range(self.steps):
            idx += self.padded[idx] <= X
        out = self.values[idx + self.value_shift]
        for j in self.fallback:
            start = self.lut[self.lut_offset[j]]  # the feature's first breakpoint in ``padded``
            b = self.padded[start : start + np.flatnonzero(np.isnan(self.padded[start:]))[0]]
            out[:, j] = self.values[np.searchsorted(b, X[:, j], side="right") + start + self.value_shift[j]]
        return out


@dataclass(frozen=True)
class TailReference:
    """Per-feature empirical distributions as step functions of ``-log p``.

    For feature j, ``-log p(x)`` (two-sided tail probability of x among the
    reference values, smoothed so p >= 1/(n+1)) is piecewise constant: one value
    exactly at each reference value, another between two neighbouring ones. It
    is stored as sorted breakpoints ``[u0, next(u0), u1, next(u1), ...]`` and a
    value table, evaluated for all features at once by a :class:`StepTable`.
    """

    steps: StepTable  # per feature: 2m sorted breakpoints and 2m+1 values of -log p
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
        # Percentiles for evidence, read off the (sorted) grid.
        q = srt[np.clip(np.round(np.array([0.01, 0.5, 0.99]) * (m_total - 1)).astype(int), 0, None)] if n else np.zeros((3, d))
        scale = (srt[-1] - srt[0]) / 8 if len(srt) else np.zeros(d)  # an eighth of the reference range
        if floor_scale is not None:
            scale = np.maximum(scale, floor_scale)
        scale = np.where(scale > 0, scale, 1e-3 * np.maximum(np.abs(q[1]), 1.0))
        return TailReference(StepTable.build(breaks, tables), q[0], q[2], srt[0].copy(), srt[-1].copy(), scale)

    def neglogp(self, X: np.ndarray) -> np.ndarray:
        """(n, d) of -log p per feature. Past the reference range it keeps growing linearly with the
        distance (by one per eighth of the reference range), so a value a million spreads out is not
        scored like the maximum."""
        beyond = np.maximum(X - self.max, 0.0) + np.maximum(self.min - X, 0.0)
        return self.steps.lookup(X) + beyond / self.scale

    def mean_neglogp(self, X: np.ndarray) -> np.ndarray:
        """(n,) mean over features of -log p."""
        if X.shape[1] == 0:
            return np.zeros(X.shape[0])
        return self.neglogp(X).mean(axis=1)


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a binary search tree of n points."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


@dataclass(frozen=True)
class ForestScorer:
    """Scores with a fitted scikit-learn IsolationForest, minus its per-call overhead.

    Per tree it keeps the public ``tree_`` and, for every node, depth + c(samples
    in the node); a score is one ``tree_.apply`` (which releases the GIL) and one
    gather per tree. Returns the isolation-forest anomaly score ``2 ** -(mean
    path length / c(max_samples))`` in (0, 1]: higher = more anomalous
    (``-IsolationForest.score_samples``).
    """

    trees: tuple[Any, ...]
    features: tuple[np.ndarray | None, ...]
    path_lengths: tuple[np.ndarray, ...]
    denominator: float

    @staticmethod
    def from_forest(forest, n_features: int) -> "ForestScorer":
        trees, features, lengths = [], [], []
        for estimator, feats in zip(forest.estimators_, forest.estimators_features_):
            tree = estimator.tree_
            depth = np.zeros(tree.node_count)
            left, right = tree.children_left, tree.children_right
            for node in range(tree.node_count):  # children always have larger ids than their parent
                if left[node] != -1:
                    depth[left[node]] = depth[right[node]] = depth[node] + 1
            trees.append(tree)
            feats = np.asarray(feats)
            features.append(None if np.array_equal(feats, np.arange(n_features)) else feats)
            lengths.append(depth + _average_path_length(tree.n_node_samples))
        denominator = len(trees) * float(_average_path_length([forest.max_samples_])[0])
        return ForestScorer(tuple(trees), tuple(features), tuple(lengths), denominator)

    def score(self, X: np.ndarray) -> np.ndarray:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        depths = np.zeros(len(X32))
        for tree, feats, lengths in zip(self.trees, self.features, self.path_lengths):
            leaves = tree.apply(X32 if feats is None else np.ascontiguousarray(X32[:, feats]))
            depths += lengths[leaves]
        if self.denominator == 0:
            return np.ones(len(X32))
        return 2.0 ** (-depths / self.denominator)


@dataclass(frozen=True)
class FoldModel:
    global_ref: TailReference
    class_refs: dict[str, TailReference]
    forest: ForestScorer


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
        def build_fold(f: int) -> FoldModel:
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
            return FoldModel(global_ref, class_refs, ForestScorer.from_forest(forest, X.shape[1]))

        with ThreadPoolExecutor(2) as pool:  # sorting and tree building release the GIL
            models = list(pool.map(build_fold, (0, 1)))
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
        iso[rows] = folds[f].forest.score(X[rows])
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
