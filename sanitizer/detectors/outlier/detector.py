"""``outlier``: records that do not look like the rest of their class or of the data.

Three signals, each learned from the bounded sample and each able to flag a record
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
  standardised values explode, from giving clean data a heavy tail. It reads
  the numeric features only: categorical columns are the category signal's.
* **category** - on the categorical columns (strings, booleans stored as text,
  integers declared categorical): a value never seen in the reference, never
  seen among the row's class, or two values never seen together, each as
  ``-log`` of a Good-Turing estimate of how often a clean row would show it
  (:mod:`~sanitizer.detectors.outlier.categories`); a cell holding the value
  of another column of a separate domain, or two such cells exchanged
  (:mod:`~sanitizer.detectors.outlier.misplaced`).

Date columns join the tail signal as days since 1970 (a missing date is judged
as the sample's median): a date far outside the observed range is a far tail.

Cross-fitting keeps the detector from grading its own homework: the sample is
split into ``folds`` folds by ``hash(record id)``; model f is fitted on the other
folds and scores every record of fold f, in the sample or not. The sample's
out-of-fold scores calibrate the thresholds: the k-NN distance becomes
``-log`` of an exceedance probability from an exponential fitted through the
median and 90th percentile of the out-of-fold distances (poison in the top few
percent does not move either; a class with at least ``CALIBRATION_ROWS``
sample rows is also calibrated on its own and the larger of the two counts),
and the tail score is already in ``-log p``. A
record is flagged when any signal passes its threshold
(``threshold_tail``, ``threshold_knn``, ``threshold_category``, in nats). No contamination rate is
assumed: a clean data set gets few flags, a dirty one as many as cross the line.

The score is the largest of the signals divided by its threshold, so a score
above 1 means flagged and 2 means twice as far past the line. Evidence names
the unusual categorical values first (column, test, reference rows; the value
in words), then the most extreme features (value, the reference's 1st-99th
percentile range, ``-log p``; a date in words), the nearest reference rows
(ids and distances) and the signals.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from sanitizer.param_checks import check_int, check_number
from sanitizer.detectors.base import Batch, DistanceCalibration, Scores, Skipped
from sanitizer.representations.scaling import standardiser
from sanitizer.detectors.contract import Detector
from sanitizer.detectors.outlier import report
from sanitizer.detectors.outlier.categories import (
    CategoryPlan,
    CategoryReference,
    category_nats,
    category_summary,
    unusual_values,
)
from sanitizer.detectors.outlier.misplaced import Homes, apart_pairs, evidence_item, homes_of, misplaced
from sanitizer.detectors.outlier.signals import (
    NeighbourReference,
    _clipped,
    _feature_nats,
    _references,
    _signals_threaded,
    class_groups,
    with_dates,
)
from sanitizer.detectors.outlier.tails import TailReference
from sanitizer.data.batch import CATEGORICAL, DATE, column_medians, salted

MIN_ROWS = 40
_FOLD_SALT = "outlier-fold"
_REFERENCE_SALT = "outlier-reference"
STANDARDISER_ROWS = 20_000
"""The neighbour signal's per-feature scaling is estimated from at most this many rows per model."""
LOW_DIMENSION = 8
"""With this many features or fewer the k-NN calibration may fit log distances (DistanceCalibration.of,
log_scale). In few dimensions a point's k-NN distance grows like density^(-1/d), so a smooth table's natural
far tail is long (ISLR Default: two money columns); in many standardised, clipped dimensions distances
concentrate and the far tail is poison's (uniform rows in 64-pixel digits), which a log scale would
compress."""
CALIBRATION_ROWS = 50
MISPLACED_EVIDENCE_NATS = 1.0  # a misplaced cell this strong is named in a flagged row's evidence
"""A class with this many sample rows calibrates its own k-NN distances."""


@dataclass(frozen=True)
class OutlierParams:
    enabled: bool = True
    threshold_tail: float = 10.0
    """Flag when the most extreme feature's Bonferroni-corrected tail probability is below exp(-this)."""
    threshold_knn: float = 6.25
    """Flag when the k-NN distance's calibrated exceedance probability is below exp(-this)."""
    threshold_category: float = 5.0
    """Flag when the union bound of the categorical tests a clean row would fail as strongly is below exp(-this)."""
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
        check_number("detectors.outlier.threshold_category", self.threshold_category, low=0.5, high=10_000)
        check_int("detectors.outlier.folds", self.folds, low=2, high=20)
        check_int("detectors.outlier.min_class_rows", self.min_class_rows, low=5)
        check_int("detectors.outlier.neighbours", self.neighbours, low=1, high=100)
        check_number("detectors.outlier.clip_z", self.clip_z, low=0.5, high=1000)
        check_int("detectors.outlier.knn_reference_rows", self.knn_reference_rows, low=64, high=100_000)
        check_number("detectors.outlier.tail_fraction", self.tail_fraction, low=0.001, high=0.5)
        check_number("detectors.outlier.class_tail_floor", self.class_tail_floor, low=0.0, high=100)
        check_int("detectors.outlier.grid_size", self.grid_size, low=16, high=100_000)
        check_int("detectors.outlier.top_features", self.top_features, low=0, high=100)


@dataclass(frozen=True)
class FoldModel:
    """What one fold model (fitted on the other folds' sample rows) knows."""

    global_tail: TailReference
    class_tails: dict[str, TailReference]
    mean: np.ndarray  # standardiser of the neighbour signal
    scale: np.ndarray
    global_neighbours: NeighbourReference
    class_neighbours: dict[str, NeighbourReference]
    categories: CategoryReference | None = None
    homes: dict[int, Homes] | None = None  # per categorical column: the values of its apart columns


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
    category_plan: CategoryPlan | None = None  # None: no categorical columns
    date_fill: np.ndarray | None = None  # a missing date's days (the sample's median); None: no date columns
    numeric_features: int = 0  # feature_names beyond this many are date columns


class OutlierDetector(Detector):
    name: ClassVar[str] = "outlier"
    needs: ClassVar[frozenset[str]] = frozenset({"features"})
    row_independent: ClassVar[bool] = True  # a row's score depends on the row and the state alone
    internal_threads: ClassVar[bool] = True  # not split across threads: the worker runs batches side by side
    Params = OutlierParams
    colour = report.COLOUR  # how the report shows it: sanitizer/detectors/outlier/report.py
    neighbour_keys = report.NEIGHBOUR_KEYS
    feature_keys = report.FEATURE_KEYS

    def describe(self, evidence: dict[str, Any]) -> list[str]:
        return report.describe(evidence)

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
            return Skipped("no numeric feature columns (its category signal runs beside the numeric ones, never alone)")
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
        date_fill = column_medians(sample.dates) if sample.dates is not None and sample.dates.shape[1] else None
        T = with_dates(sample.X, sample.dates, date_fill)  # the tail's matrix: numeric features, then dates
        codes = sample.categorical if sample.categorical is not None and sample.categorical.shape[1] else None
        plan = CategoryPlan.of(codes, sample.columns[CATEGORICAL]) if codes is not None else None
        plan = replace(plan, apart=apart_pairs(plan, codes)) if plan is not None else None

        def capped(rows: np.ndarray, cap: int = params.knn_reference_rows) -> np.ndarray:
            if len(rows) <= cap:
                return rows
            return np.sort(rows[np.argsort(priority[rows], kind="stable")[:cap]])

        def build(f: int) -> FoldModel:
            rows = np.flatnonzero(fold != f)
            X = sample.X[rows]
            global_tail = TailReference.build(T[rows], params.grid_size, params.tail_fraction)
            floor = params.class_tail_floor * global_tail.sd
            mean, scale = standardiser(X if len(rows) <= STANDARDISER_ROWS else sample.X[capped(rows, STANDARDISER_ROWS)],
                                       sample.feature_names)

            def neighbours(members: np.ndarray, salt: int) -> NeighbourReference:
                members = capped(members)
                Z = _clipped(sample.X[members], mean, scale, params.clip_z)
                return NeighbourReference.build(Z, sample.ids[members], seed=seed * 131 + f * 17 + salt)

            class_tails, class_neighbours, class_rows = {}, {}, {}
            for i, c in enumerate(sorted(own)):
                members = groups[c][fold[groups[c]] != f]
                class_tails[c] = TailReference.build(T[members], params.grid_size, params.tail_fraction, floor)
                class_neighbours[c] = neighbours(members, i + 1)
                class_rows[c] = np.searchsorted(rows, members)  # positions among the model's rows
            categories = CategoryReference.build(plan, codes[rows], class_rows) if plan is not None else None
            homes = homes_of(plan, plan.apart, categories.columns) if plan is not None else None
            return FoldModel(global_tail, class_tails, mean, scale, neighbours(rows, 0), class_neighbours, categories,
                             homes)

        with ThreadPoolExecutor(2) as pool:  # sorting and index building release the GIL
            models = tuple(pool.map(build, range(K)))

        # Out-of-fold scores of the sample calibrate the distance signal.
        # A class with enough rows also gets its own calibration (see _distance_nats).
        _, distance = _signals_threaded(models, params, T, sample.labels, fold)
        low = sample.X.shape[1] <= LOW_DIMENSION  # long natural k-NN tails: see LOW_DIMENSION
        by_class = {c: DistanceCalibration.of(distance[groups[c]], log_scale=low) for c in sorted(own)
                    if len(groups[c]) >= CALIBRATION_ROWS}
        reference_rows = int(models[0].global_neighbours.index.rows
                             + sum(r.index.rows for r in models[0].class_neighbours.values()))
        names = sample.feature_names + (sample.columns.get(DATE, ()) if date_fill is not None else ())
        return OutlierState(params, models, DistanceCalibration.of(distance, log_scale=low), by_class,
                            names, sample.n, len(own), reference_rows, plan, date_fill, len(sample.feature_names))

    def score(self, batch: Batch, state: OutlierState) -> Scores:
        if batch.n == 0:
            return Scores(np.zeros(0), np.zeros(0, dtype=bool), 1.0)
        params = state.params
        fold = self.fold_of(batch.keys, params.folds)  # scored by the model that did not see the record
        T = with_dates(batch.X, batch.dates, state.date_fill)
        tail, distance = _signals_threaded(state.models, params, T, batch.labels, fold)
        knn = _distance_nats(state, distance, batch.labels)
        score = np.maximum(tail / params.threshold_tail, knn / params.threshold_knn)
        category = None
        if state.category_plan is not None:
            category = _category_nats(state, batch, fold)
            np.maximum(score, category / params.threshold_category, out=score)
        flagged = score > 1.0
        rows = np.flatnonzero(flagged)
        cat = category[rows] if category is not None else np.zeros(len(rows))
        evidence = _evidence(state, batch, T, rows, fold, tail[rows], knn[rows], distance[rows], cat) if len(rows) else {}
        return Scores(score, flagged, 1.0, evidence)

    def summary(self, state: OutlierState) -> dict[str, Any]:
        p = state.params
        out = {
            "threshold": 1.0,
            "score": "max(tail nats / threshold_tail, k-NN nats / threshold_knn, category nats / threshold_category); "
                     "flagged above 1",
            "threshold_tail": p.threshold_tail,
            "threshold_knn": p.threshold_knn,
            "threshold_category": p.threshold_category,
            "folds": p.folds,
            "neighbours": p.neighbours,
            "sample_rows": state.sample_rows,
            "classes_with_own_reference": state.classes_with_own_reference,
            "neighbour_reference_rows_per_model": state.reference_rows,
            "calibration": {
                "knn_distance_median": state.distance.median,
                "knn_distance_q90": state.distance.q90,
                "knn_distance_beta": state.distance.beta,
                "knn_tail": "log distance" if state.distance.offset is not None else "distance",
                "knn_tail_by_class": {c: "log distance" if cal.offset is not None else "distance"
                                      for c, cal in state.distance_by_class.items()},
                "classes_with_own_calibration": len(state.distance_by_class),
            },
        }
        if state.category_plan is not None:
            out["categories"] = category_summary(state.category_plan, state.models[0].categories)
        if state.date_fill is not None:
            out["dates_in_tail"] = list(state.feature_names[state.numeric_features:])
        return out


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


def _category_nats(state: OutlierState, batch: Batch, fold: np.ndarray) -> np.ndarray:
    """The category signal of every row, each row tested against the model that did not see it."""
    out = np.zeros(batch.n)
    for f, label, rows in _references(state.models, class_groups(batch.labels), fold):
        model, codes = state.models[f], batch.categorical[rows]
        tests = model.categories.tests(state.category_plan, label, codes)
        moved = misplaced(state.category_plan, model.homes, model.categories.columns, codes)
        out[rows] = np.maximum(category_nats(tests, len(rows)), moved.nats)
    return out


def _feature_item(state: OutlierState, ref_tail: TailReference, j: int, value: float, nats: float) -> dict[str, Any]:
    """A numeric feature's evidence; a date column's (past the numeric features) names its value and range in words."""
    if j < state.numeric_features:
        return {"feature": state.feature_names[j], "value": value,
                "typical_range": [float(ref_tail.low[j]), float(ref_tail.high[j])], "neg_log_tail_p": nats}
    name = state.feature_names[j]
    return {"feature": name, "value_from_row": name, "days": value,
            "typical_range": [_iso(ref_tail.low[j]), _iso(ref_tail.high[j])], "neg_log_tail_p": nats}


def _iso(days: float) -> str:
    return str(np.datetime64(int(np.floor(days)), "D"))


def _evidence(state: OutlierState, batch: Batch, T: np.ndarray, rows: np.ndarray, fold, tail, knn, distance,
              category) -> dict[int, dict[str, Any]]:
    """Evidence for the flagged rows, computed per (model, reference) group in one vectorised pass. ``T`` is the
    tail's matrix (numeric features, then dates)."""
    params = state.params
    plan = state.category_plan
    out: dict[int, dict[str, Any]] = {}
    position = {int(r): i for i, r in enumerate(rows)}
    sub_groups = class_groups(batch.labels[rows])
    for f, label, local in _references(state.models, sub_groups, fold[rows]):
        model = state.models[f]
        idx = rows[local]
        X = T[idx]
        contrib = _feature_nats(model, label, X)
        top = np.argsort(-contrib, axis=1, kind="stable")[:, : params.top_features]
        ref_tail = model.class_tails[label] if label is not None else model.global_tail
        ref = model.class_neighbours[label] if label is not None else model.global_neighbours
        Z = _clipped(X[:, : state.numeric_features], model.mean, model.scale, params.clip_z)
        dist, found = ref.index.search_distances(Z, params.neighbours)
        tests = model.categories.tests(plan, label, batch.categorical[idx]) if plan is not None else None
        moved = (misplaced(plan, model.homes, model.categories.columns, batch.categorical[idx])
                 if plan is not None else None)
        for r, i in enumerate(idx):
            p = position[int(i)]
            signals = [("tail", tail[p], params.threshold_tail), ("knn", knn[p], params.threshold_knn)]
            if plan is not None:
                signals.append(("category", category[p], params.threshold_category))
            unusual = (unusual_values(tests, plan, model.categories, label, r, max(params.top_features, 1))
                       if plan is not None and category[p] > 0 else [])
            if moved is not None and moved.nats[r] >= MISPLACED_EVIDENCE_NATS:
                rows_ref = model.categories.columns[0].rows
                unusual = [evidence_item(plan, moved, r, rows_ref)] + unusual[: max(params.top_features, 1) - 1]
            extreme = [_feature_item(state, ref_tail, int(j), float(X[r, j]), round(float(contrib[r, j]), 3))
                       for j in top[r] if contrib[r, j] > 0]
            evidence = {
                "reference": f"class {label}" if label is not None else "all classes",
                "fired": [name for name, value, limit in signals if value > limit],
                "signals": {
                    "tail": round(float(tail[p]), 3),
                    "tail_threshold": params.threshold_tail,
                    "knn": round(float(knn[p]), 3),
                    "knn_threshold": params.threshold_knn,
                    "knn_distance": round(float(distance[p]), 4),
                    "typical_knn_distance": round(state.distance_by_class.get(label, state.distance).median, 4),
                },
                # categorical findings first: the report shows the columns they name first
                "extreme_features": unusual + extreme,
                "nearest": [
                    {"id": str(ref.ids[q]), "distance": round(float(dd), 4)}
                    for q, dd in zip(found[r], dist[r])
                    if q >= 0
                ],
            }
            if plan is not None:
                evidence["signals"].update({"category": round(float(category[p]), 3),
                                            "category_threshold": params.threshold_category})
            out[int(i)] = evidence
    return out
