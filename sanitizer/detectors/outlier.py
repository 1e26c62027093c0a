"""``outlier``: records that do not look like the rest of their class or of the data.

Two signals, each learned from the bounded sample and each able to flag a record
on its own:

* **tail** - for every feature, how improbable the value is among the reference
  rows: a two-sided empirical tail probability inside the observed body, and an
  exponential tail fitted to the most extreme ``tail_fraction`` of the reference
  beyond it (so a value ten spreads past the largest one keeps getting less
  probable instead of being scored like the maximum). A record's tail score is
  the LARGEST per-feature ``-log p`` minus ``log(d)`` (a Bonferroni correction over
  the d features): one feature far outside the reference is enough, and it is
  not diluted by the ordinary ones. With a class reference (``per_class``), a
  feature counts as extreme only when it is extreme both for the record's class
  and for the whole data (the smaller of the two ``-log p``): a value unusual for
  the class but common in the data is the label detectors' business, and
  sparse, discrete features (pixels that are blank in one class) would
  otherwise make every clean class look full of outliers.
* **knn** - the mean Euclidean distance to the ``neighbours`` nearest reference
  rows of the record's own class (classes with too few rows use all classes),
  in standardised feature space with every coordinate clipped to
  ``+-clip_z``. It catches records whose joint pattern is wrong even when no
  single value is extreme (uniform noise, a foreign class, scaled-up
  deviations). The clip keeps one extreme coordinate (the tail signal's job)
  from dominating the distance, and keeps near-constant features, whose
  standardised values explode, from giving clean data a heavy tail.

Cross-fitting keeps the detector from grading its own homework: the sample is
split into ``folds`` folds by ``hash(record id)``; model f is fitted on the other
folds and scores every record of fold f, in the sample or not. The sample's
out-of-fold scores calibrate the thresholds: the k-NN distance becomes
``-log`` of an exceedance probability from an exponential fitted through the
median and 90th percentile of the out-of-fold distances (poison in the top few
percent does not move either; a class with at least ``CALIBRATION_ROWS``
sample rows is also calibrated on its own and the larger of the two counts),
and the tail score is already in ``-log p``. A
record is flagged when either signal passes its threshold
(``threshold_tail``, ``threshold_knn``, in nats). No contamination rate is
assumed: a clean data set gets few flags, a dirty one as many as cross the line.

The score is the larger of the two signals divided by its threshold, so a score
above 1 means flagged and 2 means twice as far past the line. Evidence names
the most extreme features (value, the reference's 1st-99th percentile range,
``-log p``), the nearest reference rows (ids and distances) and both signals.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sanitizer.checks import check_int, check_number
from sanitizer.detectors.base import Batch, DistanceCalibration, Scores, Skipped, standardise, standardiser
from sanitizer.detectors.contract import Detector
from sanitizer.neighbours import NeighbourIndex
from sanitizer.records import salted

MIN_ROWS = 40
_FOLD_SALT = "outlier-fold"
_REFERENCE_SALT = "outlier-reference"
STANDARDISER_ROWS = 20_000
"""The neighbour signal's per-feature scaling is estimated from at most this many rows per model."""
CALIBRATION_ROWS = 50
"""A class with this many sample rows calibrates its own k-NN distances."""
MAX_NATS = 1e4
"""Per-feature -log p is capped here (a constant feature that changes would otherwise be inf)."""


@dataclass(frozen=True)
class OutlierParams:
    enabled: bool = True
    threshold_tail: float = 10.0
    """Flag when the most extreme feature's Bonferroni-corrected tail probability is below exp(-this)."""
    threshold_knn: float = 6.25
    """Flag when the k-NN distance's calibrated exceedance probability is below exp(-this)."""
    folds: int = 10
    """Cross-fitting folds: each record is scored by the model fitted on the other folds."""
    per_class: bool = True
    """Compare a record with its own class (classes with too few sample rows use all classes)."""
    min_class_rows: int = 30
    """A class needs this many sample rows in every fold model for its own reference."""
    neighbours: int = 5
    """k of the k-nearest-neighbour distance signal."""
    clip_z: float = 5.0
    """Standardised coordinates are clipped to +-this for the neighbour signal."""
    knn_reference_rows: int = 1024
    """At most this many reference rows per class (and for all classes) per fold model: exact
    search, bounded state and scoring cost."""
    tail_fraction: float = 0.05
    """The exponential tail is fitted to this share (at least 5 rows) of each side of a reference."""
    class_tail_floor: float = 0.25
    """A class reference's tail decays no faster than this many global standard deviations per nat."""
    grid_size: int = 256
    """Reference quantiles kept per feature (bounds state size and scoring cost); beyond the body the
    exponential tails take over, so the grid only has to resolve the middle 90%."""
    top_features: int = 3

    RETIRED: ClassVar[dict[str, str]] = {
        "threshold_z": "the outlier score is no longer a robust z-score; set threshold_tail and/or threshold_knn "
                       "(nats, defaults 10 and 6) instead",
        "n_estimators": "the isolation forest was replaced by the k-NN distance signal (neighbours, "
                        "knn_reference_rows); remove this key",
        "max_samples": "the isolation forest was replaced by the k-NN distance signal (neighbours, "
                       "knn_reference_rows); remove this key",
    }

    def validate(self) -> None:
        check_number("detectors.outlier.threshold_tail", self.threshold_tail, low=0.5, high=10_000)
        check_number("detectors.outlier.threshold_knn", self.threshold_knn, low=0.5, high=10_000)
        check_int("detectors.outlier.folds", self.folds, low=2, high=20)
        check_int("detectors.outlier.min_class_rows", self.min_class_rows, low=5)
        check_int("detectors.outlier.neighbours", self.neighbours, low=1, high=100)
        check_number("detectors.outlier.clip_z", self.clip_z, low=0.5, high=1000)
        check_int("detectors.outlier.knn_reference_rows", self.knn_reference_rows, low=64, high=100_000)
        check_number("detectors.outlier.tail_fraction", self.tail_fraction, low=0.001, high=0.5)
        check_number("detectors.outlier.class_tail_floor", self.class_tail_floor, low=0.0, high=100)
        check_int("detectors.outlier.grid_size", self.grid_size, low=16, high=100_000)
        check_int("detectors.outlier.top_features", self.top_features, low=0, high=100)


def _compact(positions: np.ndarray) -> np.ndarray:
    """Positions as int32 when they fit (halves the state every worker receives)."""
    return positions.astype(np.int32 if positions.size == 0 or positions.max() < 2**31 - 1 else np.int64)


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
            luts.append(np.searchsorted(kb, np.arange(-1, n_bins + 1), side="left") + position)
            padded.append(np.append(b, np.nan))
            lut_pos += n_bins + 2
            position += len(b) + 1
            value_pos += len(v)
        return StepTable(
            lo, inv_width, bins, lut_offset, _compact(np.concatenate(luts)), np.concatenate(padded), shifts,
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
    """Per-feature reference distributions, evaluated as two-sided ``-log p``.

    Inside the observed body, ``-log p(x)`` is the two-sided empirical tail
    probability of x among the reference values (smoothed so p >= 1/(n+1)),
    piecewise constant: one value exactly at each reference value, another
    between two neighbouring ones, stored as sorted breakpoints and a value table
    and evaluated for all features at once by a :class:`StepTable`. Beyond the
    ``m``-th most extreme value of a side (``m`` = ``tail_fraction`` of the rows,
    at least 5) the tail is exponential, fitted to those m values (scale ``beta``
    from the mean excess of all but their most extreme few, which a few planted
    extremes barely move), so the score keeps growing linearly with the distance.
    """

    steps: StepTable  # per feature: 2u sorted breakpoints and 2u+1 values of -log p
    low: np.ndarray  # (d,) 1st percentile, for evidence
    high: np.ndarray  # (d,) 99th percentile, for evidence
    upper_start: np.ndarray  # (d,) where the upper exponential tail starts
    upper_beta: np.ndarray  # (d,) its scale
    lower_start: np.ndarray  # (d,)
    lower_beta: np.ndarray  # (d,)
    tail_nats: float  # -log of the two-sided probability at the start of either exponential tail
    sd: np.ndarray  # (d,) spread of the reference (std; a quantile estimate for class references)

    @staticmethod
    def build(X: np.ndarray, grid_size: int, tail_fraction: float, floor: np.ndarray | None = None) -> "TailReference":
        """Reference from rows X (at least 2). ``floor`` bounds each tail's scale from below (a class
        reference borrows a share of the whole sample's spread, so a feature that is nearly constant
        within a class does not make every small deviation infinitely improbable)."""
        n, d = X.shape
        full = np.sort(X, axis=0)
        m = int(min(max(5, np.ceil(tail_fraction * n)), n - 1))
        upper_start, lower_start = full[n - 1 - m], full[m]
        # The scale is the mean excess over the tail's start of the TRIMMED tail (its most extreme
        # TRIM share left out, rescaled to be exact for an exponential): the plain mean would let a
        # few planted extremes in the sample stretch the very tail that should expose them.
        upper_beta = _trimmed_scale(full[n - m:] - upper_start)
        lower_beta = _trimmed_scale(lower_start - full[:m])
        median = full[n // 2]
        if floor is None:
            sd = X.std(axis=0)
            least = np.maximum(0.05 * sd, 1e-6 * np.maximum(np.abs(median), 1.0))
        else:  # a class reference: its floor (a share of the global spread) is what bounds the scale
            sd = (full[int(0.84 * (n - 1))] - full[int(0.16 * (n - 1))]) / 2.0  # quantile spread: no second pass
            least = np.maximum(np.maximum(0.05 * sd, floor), 1e-6 * np.maximum(np.abs(median), 1.0))
        upper_beta, lower_beta = np.maximum(upper_beta, least), np.maximum(lower_beta, least)
        srt = full
        if n > grid_size:
            srt = full[((np.arange(grid_size) + 0.5) * n / grid_size).astype(np.int64)]
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
        q = full[np.clip(np.round(np.array([0.01, 0.99]) * (n - 1)).astype(int), 0, None)]
        return TailReference(
            StepTable.build(breaks, tables), q[0], q[1], upper_start, upper_beta, lower_start, lower_beta,
            float(np.log(n / m) - np.log(2.0)), sd,
        )

    def neglogp(self, X: np.ndarray) -> np.ndarray:
        """(n, d) of two-sided -log p per feature, capped at MAX_NATS."""
        out = self.steps.lookup(X)
        with np.errstate(over="ignore", invalid="ignore"):
            up = (X - self.upper_start) / self.upper_beta
            down = (self.lower_start - X) / self.lower_beta
        beyond = np.maximum(up, down)
        np.maximum(out, self.tail_nats + beyond, out=out)
        return np.minimum(out, MAX_NATS, out=out)


TRIM = 0.05
"""Share of each fitted tail's most extreme values left out of its scale (none below 20 values)."""


def _trimmed_scale(excess: np.ndarray) -> np.ndarray:
    """Exponential scale per column from the non-negative excesses, the largest TRIM share left
    out; the trimmed mean is rescaled by the mean of an Exp(1) variable below the same
    quantile, so it is exact for an exponential tail."""
    m = len(excess)
    drop = min(int(TRIM * m), m - 1) if m > 1 else 0
    if drop == 0:
        return excess.mean(axis=0)
    t = drop / m
    below = (1.0 - t * (1.0 - np.log(t))) / (1.0 - t)
    return np.sort(excess, axis=0)[: m - drop].mean(axis=0) / below


@dataclass(frozen=True)
class NeighbourReference:
    """Reference rows for the k-NN signal: a faiss index over their clipped standardised features."""

    index: NeighbourIndex
    ids: np.ndarray  # (rows,) record ids, for evidence

    @staticmethod
    def build(Z: np.ndarray, ids: np.ndarray, seed: int) -> "NeighbourReference":
        return NeighbourReference(NeighbourIndex.build(Z, seed=seed), np.asarray(ids, dtype=object))

    def distances(self, Z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean distance to the k nearest reference rows, (n, k) their positions)."""
        dist, found = self.index.search_distances(Z, k)
        return dist.mean(axis=1), found


@dataclass(frozen=True)
class FoldModel:
    """What one fold model (fitted on the other folds' sample rows) knows."""

    global_tail: TailReference
    class_tails: dict[str, TailReference]
    mean: np.ndarray  # standardiser of the neighbour signal
    scale: np.ndarray
    global_neighbours: NeighbourReference
    class_neighbours: dict[str, NeighbourReference]


@dataclass(frozen=True)
class OutlierState:
    params: OutlierParams
    models: tuple[FoldModel, ...]
    distance: DistanceCalibration
    distance_by_class: dict[str, DistanceCalibration]
    feature_names: tuple[str, ...]
    sample_rows: int
    classes_with_own_reference: int
    reference_rows: int  # neighbour reference rows per fold model, summed over its references


class OutlierDetector(Detector):
    name: ClassVar[str] = "outlier"
    needs: ClassVar[frozenset[str]] = frozenset({"features"})
    row_independent: ClassVar[bool] = True  # a row's score depends on the row and the state alone
    internal_threads: ClassVar[bool] = True  # scores row chunks on every core itself
    Params = OutlierParams

    def needs_for(self, params: OutlierParams) -> frozenset[str]:
        """The labels too, when records are compared with their own class (``per_class``)."""
        return self.needs | {"label"} if params.per_class else self.needs

    @staticmethod
    def fold_of(keys: np.ndarray, folds: int = OutlierParams.folds) -> np.ndarray:
        """Cross-fitting fold of each record: its model is the one fitted without this fold."""
        return (salted(keys, _FOLD_SALT) % np.uint64(folds)).astype(np.int64)

    def fit(self, sample: Batch, params: OutlierParams, seed: int):
        if sample.n < MIN_ROWS:
            return Skipped(f"needs at least {MIN_ROWS} valid rows in the sample, got {sample.n}")
        if sample.X.shape[1] == 0:
            return Skipped("no feature columns")
        K = params.folds
        fold = self.fold_of(sample.keys, K)
        per_fold = np.bincount(fold, minlength=K)
        if sample.n - per_fold.max() < MIN_ROWS // 2:
            return Skipped(f"needs at least {MIN_ROWS // 2} sample rows outside each cross-fitting fold")
        groups = class_groups(sample.labels)
        # A class gets its own reference only when every fold model holds enough of its rows, so every
        # record of the class is judged the same way whichever model scores it.
        own = set()
        if params.per_class:
            for c, members in groups.items():
                if len(members) - np.bincount(fold[members], minlength=K).max() >= params.min_class_rows:
                    own.add(c)
        priority = salted(sample.keys, _REFERENCE_SALT)

        def capped(rows: np.ndarray, cap: int = params.knn_reference_rows) -> np.ndarray:
            if len(rows) <= cap:
                return rows
            return np.sort(rows[np.argsort(priority[rows], kind="stable")[:cap]])

        def build(f: int) -> FoldModel:
            rows = np.flatnonzero(fold != f)
            X = sample.X[rows]
            global_tail = TailReference.build(X, params.grid_size, params.tail_fraction)
            floor = params.class_tail_floor * global_tail.sd
            mean, scale = standardiser(X if len(rows) <= STANDARDISER_ROWS else sample.X[capped(rows, STANDARDISER_ROWS)])

            def neighbours(members: np.ndarray, salt: int) -> NeighbourReference:
                members = capped(members)
                Z = _clipped(sample.X[members], mean, scale, params.clip_z)
                return NeighbourReference.build(Z, sample.ids[members], seed=seed * 131 + f * 17 + salt)

            class_tails, class_neighbours = {}, {}
            for i, c in enumerate(sorted(own)):
                members = groups[c][fold[groups[c]] != f]
                class_tails[c] = TailReference.build(sample.X[members], params.grid_size, params.tail_fraction, floor)
                class_neighbours[c] = neighbours(members, i + 1)
            return FoldModel(global_tail, class_tails, mean, scale, neighbours(rows, 0), class_neighbours)

        with ThreadPoolExecutor(2) as pool:  # sorting and index building release the GIL
            models = tuple(pool.map(build, range(K)))

        # Out-of-fold scores of the sample calibrate the distance signal.
        # A class with enough rows also gets its own calibration (see _distance_nats).
        _, distance = _signals_threaded(models, params, sample.X, sample.labels, fold)
        by_class = {c: DistanceCalibration.of(distance[groups[c]]) for c in sorted(own)
                    if len(groups[c]) >= CALIBRATION_ROWS}
        reference_rows = int(models[0].global_neighbours.index.rows
                             + sum(r.index.rows for r in models[0].class_neighbours.values()))
        return OutlierState(params, models, DistanceCalibration.of(distance), by_class, sample.feature_names,
                            sample.n, len(own), reference_rows)

    def score(self, batch: Batch, state: OutlierState) -> Scores:
        if batch.n == 0:
            return Scores(np.zeros(0), np.zeros(0, dtype=bool), 1.0)
        params = state.params
        fold = self.fold_of(batch.keys, params.folds)  # scored by the model that did not see the record
        tail, distance = _signals_threaded(state.models, params, batch.X, batch.labels, fold)
        knn = _distance_nats(state, distance, batch.labels)
        score = np.maximum(tail / params.threshold_tail, knn / params.threshold_knn)
        flagged = score > 1.0
        rows = np.flatnonzero(flagged)
        evidence = _evidence(state, batch, rows, fold, tail[rows], knn[rows], distance[rows]) if len(rows) else {}
        return Scores(score, flagged, 1.0, evidence)

    def summary(self, state: OutlierState) -> dict[str, Any]:
        p = state.params
        return {
            "threshold": 1.0,
            "score": "max(tail nats / threshold_tail, k-NN nats / threshold_knn); flagged above 1",
            "threshold_tail": p.threshold_tail,
            "threshold_knn": p.threshold_knn,
            "folds": p.folds,
            "neighbours": p.neighbours,
            "sample_rows": state.sample_rows,
            "classes_with_own_reference": state.classes_with_own_reference,
            "neighbour_reference_rows_per_model": state.reference_rows,
            "calibration": {
                "knn_distance_median": state.distance.median,
                "knn_distance_q90": state.distance.q90,
                "knn_distance_beta": state.distance.beta,
                "classes_with_own_calibration": len(state.distance_by_class),
            },
        }


def _distance_nats(state: OutlierState, distance: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """k-NN distances in nats: the larger of the global and (where it has one) the class calibration.
    A class calibration alone would let a class crowded with mislabelled records (far from the class,
    so they stretch its distances) hide its outliers; the global one alone would let a tight class's
    odd record hide behind a loose class's spread."""
    knn = state.distance.nats(distance)
    if state.distance_by_class:
        for c, members in class_groups(labels).items():
            calibration = state.distance_by_class.get(c)
            if calibration is not None:
                knn[members] = np.maximum(knn[members], calibration.nats(distance[members]))
    return knn


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


def _clipped(X: np.ndarray, mean: np.ndarray, scale: np.ndarray, clip: float) -> np.ndarray:
    Z = standardise(X, mean, scale)
    return np.clip(Z, -clip, clip, out=Z).astype(np.float32)


def _feature_nats(model: FoldModel, label: str | None, X: np.ndarray) -> np.ndarray:
    """(n, d) per-feature -log p: the global reference's, or the smaller of the class's and the global's."""
    nats = model.global_tail.neglogp(X)
    if label is not None:
        np.minimum(nats, model.class_tails[label].neglogp(X), out=nats)
    return nats


def _references(models, groups, fold):
    """Yield (model index, class label or None, row indices) covering every row exactly once."""
    covered = np.zeros(len(fold), dtype=bool)
    for c, members in groups.items():
        if c not in models[0].class_tails:
            continue
        for f in range(len(models)):
            rows = members[fold[members] == f]
            if len(rows):
                covered[rows] = True
                yield f, c, rows
    for f in range(len(models)):
        rows = np.flatnonzero((fold == f) & ~covered)
        if len(rows):
            yield f, None, rows


def _signals(models, params: OutlierParams, X, groups, fold):
    """(tail nats, mean k-NN distance) of every row, each row scored by ``models[fold[row]]``."""
    n, d = X.shape
    tail, distance = np.empty(n), np.empty(n)
    correction = np.log(max(d, 1))
    for f, label, rows in _references(models, groups, fold):
        model = models[f]
        Xr = X[rows]
        tail[rows] = _feature_nats(model, label, Xr).max(axis=1) - correction
        ref = model.class_neighbours[label] if label is not None else model.global_neighbours
        distance[rows], _ = ref.distances(_clipped(Xr, model.mean, model.scale, params.clip_z), params.neighbours)
    return np.maximum(tail, 0.0), distance


def _signals_threaded(models, params, X, labels, fold, chunk_rows: int = 16_384):
    """_signals over row chunks on all cores (numpy and faiss release the GIL)."""
    import os

    n = len(X)
    bounds = list(range(0, n, chunk_rows)) + [n]
    spans = list(zip(bounds[:-1], bounds[1:]))

    def work(span):
        a, b = span
        return _signals(models, params, X[a:b], class_groups(labels[a:b]), fold[a:b])

    if len(spans) <= 1:
        return work((0, n))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        parts = list(pool.map(work, spans))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(2))


def _evidence(state: OutlierState, batch: Batch, rows: np.ndarray, fold, tail, knn, distance) -> dict[int, dict[str, Any]]:
    """Evidence for the flagged rows, computed per (model, reference) group in one vectorised pass."""
    params = state.params
    out: dict[int, dict[str, Any]] = {}
    position = {int(r): i for i, r in enumerate(rows)}
    sub_groups = class_groups(batch.labels[rows])
    for f, label, local in _references(state.models, sub_groups, fold[rows]):
        model = state.models[f]
        idx = rows[local]
        X = batch.X[idx]
        contrib = _feature_nats(model, label, X)
        top = np.argsort(-contrib, axis=1, kind="stable")[:, : params.top_features]
        ref_tail = model.class_tails[label] if label is not None else model.global_tail
        ref = model.class_neighbours[label] if label is not None else model.global_neighbours
        dist, found = ref.index.search_distances(_clipped(X, model.mean, model.scale, params.clip_z), params.neighbours)
        for r, i in enumerate(idx):
            p = position[int(i)]
            fired = [name for name, value, limit in (("tail", tail[p], params.threshold_tail),
                                                     ("knn", knn[p], params.threshold_knn)) if value > limit]
            out[int(i)] = {
                "reference": f"class {label}" if label is not None else "all classes",
                "fired": fired,
                "signals": {
                    "tail": round(float(tail[p]), 3),
                    "tail_threshold": params.threshold_tail,
                    "knn": round(float(knn[p]), 3),
                    "knn_threshold": params.threshold_knn,
                    "knn_distance": round(float(distance[p]), 4),
                    "typical_knn_distance": round(state.distance_by_class.get(label, state.distance).median, 4),
                },
                "extreme_features": [
                    {
                        "feature": state.feature_names[j],
                        "value": float(X[r, j]),
                        "typical_range": [float(ref_tail.low[j]), float(ref_tail.high[j])],
                        "neg_log_tail_p": round(float(contrib[r, j]), 3),
                    }
                    for j in top[r]
                    if contrib[r, j] > 0
                ],
                "nearest": [
                    {"id": str(ref.ids[q]), "distance": round(float(dd), 4)}
                    for q, dd in zip(found[r], dist[r])
                    if q >= 0
                ],
            }
    return out
