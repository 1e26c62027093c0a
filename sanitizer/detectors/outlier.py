"""``outlier``: records that do not look like the rest of their class or of the data.

Three signals, each learned from the bounded sample:

* **class tail** - for every feature, the two-sided empirical tail probability of
  the value among the sample rows of the record's own class (an ECOD-style
  score: mean over features of ``-log p``). Catches a record that is ordinary
  for the data set but extreme for its class.
* **global tail** - the same against the whole sample.
* **isolation forest** - a multivariate signal: records that random axis-aligned
  splits isolate quickly are unusual even when no single feature is.

Cross-fitting keeps the detector from grading its own homework: the sample is
split into two folds by ``hash(record id)``, one model is fitted per fold, and
every record (in the sample or not) is scored by the model of the *other* fold.
The sample's out-of-fold scores then calibrate the thresholds honestly: each
signal is turned into a robust z-score (median / MAD of its out-of-fold scores,
per class for the class tail), the z-scores are averaged, and the average is
robustly standardised once more. The final score reads as "how many robust
standard deviations above a typical record"; a record is flagged when it
exceeds ``threshold_z``. Because the median and MAD ignore the tails, planted
outliers in the sample barely move the threshold, and a clean data set does not
get a fixed share flagged.

Evidence for a flagged record: the features most extreme for its reference
(value and the reference's 1st-99th percentile range) and each signal's z-score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

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
class TailReference:
    """Per-feature empirical distributions, reduced to quantile grids with counts."""

    values: tuple[np.ndarray, ...]  # per feature: sorted unique grid values
    cum_le: tuple[np.ndarray, ...]  # per feature: grid count <= value
    cum_lt: tuple[np.ndarray, ...]  # per feature: grid count < value
    n: int  # grid points per feature
    low: np.ndarray  # (d,) 1st percentile, for evidence
    high: np.ndarray  # (d,) 99th percentile, for evidence

    @staticmethod
    def build(X: np.ndarray, grid_size: int) -> "TailReference":
        n, d = X.shape
        srt = np.sort(X, axis=0)
        if n > grid_size:
            srt = srt[((np.arange(grid_size) + 0.5) * n / grid_size).astype(np.int64)]
        values, le, lt = [], [], []
        for j in range(d):
            u, counts = np.unique(srt[:, j], return_counts=True)
            cum = np.cumsum(counts)
            values.append(u)
            le.append(cum)
            lt.append(cum - counts)
        q = np.quantile(X, [0.01, 0.99], axis=0) if n else np.zeros((2, d))
        return TailReference(tuple(values), tuple(le), tuple(lt), srt.shape[0], q[0], q[1])

    def neglogp(self, X: np.ndarray) -> np.ndarray:
        """(n, d) of -log(two-sided empirical tail probability), smoothed so p >= 1/(n+1)."""
        out = np.empty(X.shape, dtype=np.float64)
        for j in range(X.shape[1]):
            u, le_c, lt_c = self.values[j], self.cum_le[j], self.cum_lt[j]
            x = X[:, j]
            idx = np.searchsorted(u, x, side="right")
            prev = np.maximum(idx - 1, 0)
            le = np.where(idx > 0, le_c[prev], 0)
            exact = (idx > 0) & (u[prev] == x)
            lt = np.where(exact, lt_c[prev], le)
            tail = np.minimum(le, self.n - lt) + 1.0
            out[:, j] = np.log((self.n + 1.0) / np.minimum(2.0 * tail, self.n + 1.0))
        return out


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
    tail_class: Robust
    tail_class_by_class: dict[str, Robust]
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
        models = []
        for f in (0, 1):
            rows = fold == f
            if rows.sum() < MIN_ROWS // 2:
                return Skipped(f"needs at least {MIN_ROWS // 2} sample rows in each cross-fitting fold")
            X, labels = sample.X[rows], sample.labels[rows]
            class_refs = {}
            if params.per_class:
                for c in np.unique(labels):
                    members = labels == c
                    if members.sum() >= params.min_class_rows:
                        class_refs[str(c)] = TailReference.build(X[members], params.grid_size)
            forest = IsolationForest(
                n_estimators=params.n_estimators,
                max_samples=min(params.max_samples, len(X)),
                random_state=(seed * 2 + f) % (2**32),
            ).fit(X.astype(np.float32))
            models.append(FoldModel(TailReference.build(X, params.grid_size), class_refs, forest))
        folds = (models[0], models[1])

        # Out-of-fold scores of the sample calibrate every threshold.
        tg, tc, iso = _signals(folds, sample.X, sample.labels, 1 - fold)
        by_class = {}
        for c in np.unique(sample.labels):
            members = sample.labels == c
            if members.sum() >= params.min_class_rows:
                by_class[str(c)] = Robust.of(tc[members])
        state = OutlierState(
            params=params,
            folds=folds,
            tail_global=Robust.of(tg),
            tail_class=Robust.of(tc),
            tail_class_by_class=by_class,
            forest=Robust.of(iso),
            combined=Robust(0.0, 1.0),
            feature_names=sample.feature_names,
            sample_rows=sample.n,
            classes_with_own_reference=min(len(folds[0].class_refs), len(folds[1].class_refs)),
        )
        combined = _combine(state, tg, tc, iso, sample.labels)
        return _replace(state, combined=Robust.of(combined))

    def score(self, batch: Batch, state: OutlierState) -> Scores:
        params = state.params
        if batch.n == 0:
            return Scores(np.zeros(0), np.zeros(0, dtype=bool), params.threshold_z)
        fold = 1 - self.fold_of(batch.keys)  # scored by the model that did not see the record
        tg, tc, iso = _signals(state.folds, batch.X, batch.labels, fold)
        score = state.combined.z(_combine(state, tg, tc, iso, batch.labels))
        flagged = score > params.threshold_z
        evidence = {}
        for i in np.flatnonzero(flagged):
            evidence[int(i)] = _evidence(state, batch, int(i), fold[i], tg[i], tc[i], iso[i])
        return Scores(score, flagged, params.threshold_z, evidence)

    def summary(self, state: OutlierState) -> dict[str, Any]:
        return {
            "threshold": state.params.threshold_z,
            "score": "robust z-score of the averaged class-tail, global-tail and isolation-forest signals",
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


def _signals(folds, X, labels, fold_index):
    """Class tail, global tail and isolation-forest signals, each row scored by folds[fold_index[row]]."""
    n = len(X)
    tg = np.empty(n)
    tc = np.empty(n)
    iso = np.empty(n)
    for f in (0, 1):
        rows = np.flatnonzero(fold_index == f)
        if len(rows) == 0:
            continue
        model = folds[f]
        Xf = X[rows]
        g = model.global_ref.neglogp(Xf).mean(axis=1)
        tg[rows] = g
        tc[rows] = g
        if model.class_refs:
            lab = labels[rows]
            for c, ref in model.class_refs.items():
                members = lab == c
                if members.any():
                    tc[rows[members]] = ref.neglogp(Xf[members]).mean(axis=1)
        iso[rows] = -model.forest.score_samples(Xf.astype(np.float32))
    return tg, tc, iso


def _combine(state: OutlierState, tg, tc, iso, labels) -> np.ndarray:
    z_tc = state.tail_class.z(tc)
    for c, robust in state.tail_class_by_class.items():
        members = labels == c
        if members.any():
            z_tc[members] = robust.z(tc[members])
    parts = [state.tail_global.z(tg), state.forest.z(iso)]
    if state.params.per_class:
        parts.append(z_tc)
    return np.mean(parts, axis=0)


def _evidence(state: OutlierState, batch: Batch, i: int, fold: int, tg, tc, iso) -> dict[str, Any]:
    model = state.folds[fold]
    label = str(batch.labels[i])
    ref = model.class_refs.get(label)
    scope = f"class {label}" if ref is not None else "all classes"
    ref = ref or model.global_ref
    x = batch.X[i : i + 1]
    contrib = ref.neglogp(x)[0]
    top = np.argsort(-contrib, kind="stable")[: state.params.top_features]
    features = [
        {
            "feature": state.feature_names[j],
            "value": float(x[0, j]),
            "typical_range": [float(ref.low[j]), float(ref.high[j])],
            "neg_log_tail_p": round(float(contrib[j]), 3),
        }
        for j in top
        if contrib[j] > 0
    ]
    robust_c = state.tail_class_by_class.get(label, state.tail_class)
    return {
        "reference": scope,
        "extreme_features": features,
        "signals_z": {
            "class_tail": round(float(robust_c.z(np.array([tc]))[0]), 3),
            "global_tail": round(float(state.tail_global.z(np.array([tg]))[0]), 3),
            "isolation_forest": round(float(state.forest.z(np.array([iso]))[0]), 3),
        },
    }
