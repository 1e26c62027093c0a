"""``label_flip``: records whose label disagrees with what the data says it should be.

Confident learning (Northcutt et al.) on cross-fitted probabilities, sharpened
by the labels of each record's nearest neighbours.

1. **Cross-fitting.** The sample is split into K folds by ``hash(record id) mod K``
   (default K = 5). Model f is fitted on every fold but f. A record in fold f -
   in the sample or not - is scored only by model f, so no record is ever
   judged by a model that trained on its own label.
2. **Two opinions per record.** The classifier's class probabilities (logistic
   regression on standardised features by default; one of ``ALLOWED_CLASSIFIERS``,
   or with ``allow_custom_classifier`` any scikit-learn classifier class with
   ``predict_proba``), and the label distribution of the record's k nearest
   neighbours among the reference rows *outside its fold* (smoothed counts).
   They are blended, ``p = w * p_model + (1 - w) * p_neighbours``, with ``w``
   chosen on the sample to maximise the out-of-fold likelihood of the given
   labels (``weight: auto``). The classifier sees global structure; the
   neighbours see local structure that a linear model misses. Where one is
   wrong the other usually is not, and the blend ranks flips better than
   either.
3. **Confident joint.** On the sample's out-of-fold blended probabilities, each
   class gets the threshold t_j = mean p_j over rows labelled j. A row labelled
   i counts toward C[i][j] for the most likely class j with p_j >= t_j. C,
   calibrated to the class counts, estimates how many rows labelled i are
   really j: the per-class noise, recorded in provenance.
4. **Score and threshold.** The score is the normalised margin
   ``max_{j != given} p_j - p_given`` (higher = more likely flipped). For each
   class i the threshold is set on the sample so that the number of class-i
   sample rows above it equals the estimated number of mislabelled class-i rows
   from the confident joint (cleanlab's "prune by noise rate", turned into a
   threshold every worker can apply to unseen rows). A threshold is never below
   zero: a record is only flagged when another label is more likely than its
   own. Nothing is flagged as "the top x%".
5. **A second pass on the cleaned sample** (``passes``, default 2). At high
   noise, or when many flips land in one class, the fold models and the
   neighbour votes learn part of the flips, and the confident joint, whose
   thresholds t_j are class means of those contaminated probabilities,
   undercounts them (one-sided flips into one class: about half found).
   The models and the reference are therefore rebuilt without the rows the
   first pass flagged and steps 2-4 rerun. In that pass a class's count is at
   least its rows whose margin exceeds ``confident_margin`` (0.4: another
   label at least 0.4 more likely), because models that no longer saw the
   flagged labels give the remaining flips clear margins - but only in classes
   the first pass estimated at ``confident_margin_min_noise`` (5%) or more
   wrong labels: in clean classes it would flag hard, correct rows. Measured in
   ``bench/label_flip_quality.py``: it lifts F1 most at 30-40% noise and for
   many-to-one flips.

6. **A bound on false flags** (:mod:`sanitizer.detectors.label_flip.noise`). On
   weakly predictable labels a margin above zero is no evidence of a flip. A
   noise model (flip rates and a temperature, fitted by EM from a 2% prior)
   gives each row the posterior that its label is wrong; a row is flagged only
   at ``min_posterior`` or more, and a class the models cannot recognise
   (``min_class_recall``, confident contradictions left out) is not judged. Provenance records the noise rate and
   the expected number of false flags.

Classes with fewer sample rows than ``min_class_rows`` (default: K) cannot be
cross-fitted and are not judged; provenance lists them. A sample with one class
skips the detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from typing import Any, ClassVar

import numpy as np

from sanitizer.param_checks import check_int, check_number
from sanitizer.detectors.base import Batch, Scores, Skipped, bounded_sample, class_indices
from sanitizer.representations.scaling import standardise, standardiser
from sanitizer.detectors.contract import Detector
from sanitizer.detectors.label_flip import report
from sanitizer.detectors.label_flip.calibration import _margin, _opinions, _top_pairs
from sanitizer.detectors.label_flip.classifiers import DEFAULT_CLASSIFIER, make_classifier
from sanitizer.detectors.label_flip.fitting import LabelFlipState, _calibrate
from sanitizer.detectors.label_flip.mixed import MixedEncoding, categorical_evidence
from sanitizer.detectors.label_flip.noise import _posterior_wrong, _row_thresholds
from sanitizer.errors import ConfigError
from sanitizer.data.batch import salted

__all__ = ["LabelFlipDetector", "LabelFlipParams", "LabelFlipState"]

_FOLD_SALT = "label-flip-fold"


@dataclass(frozen=True)
class LabelFlipParams:
    enabled: bool = True
    folds: int = 5
    classifier: str = DEFAULT_CLASSIFIER
    """Import path of a scikit-learn classifier with predict_proba: one of ALLOWED_CLASSIFIERS, or any
    classifier class when ``allow_custom_classifier`` is set."""
    classifier_params: dict = field(default_factory=dict)
    """Keyword arguments for the classifier: plain data only (strings, numbers, booleans, null, lists, mappings)."""
    allow_custom_classifier: bool = False
    """Let ``classifier`` name a class outside ALLOWED_CLASSIFIERS. Importing it runs its module's code:
    set this only for a config you trust as you trust code."""
    standardize: bool = True
    neighbours: int = 10
    fit_rows: int = 20_000
    """Sample rows the classifiers and the calibration use (every class keeps up to 50 of its rows)."""
    reference_size: int = 10_000
    """Rows the neighbour search compares against (bounds its cost per record)."""
    weight: Any = "auto"
    """Weight of the classifier in the blend with the neighbours, 0..1, or "auto"."""
    min_class_rows: int = 0
    """Classes with fewer sample rows are not judged; 0 means the number of folds."""
    top_neighbours: int = 5
    passes: int = 2
    """Calibration passes. Each pass after the first refits the fold models and rebuilds the neighbour
    reference without the sample rows the previous pass flagged, then calibrates again (1 = one pass,
    as cleanlab does)."""
    confident_margin: float = 0.4
    """In passes after the first, a class's estimated count of wrong labels is at least the number of
    its rows whose margin exceeds this (another label at least this much more likely than the given one),
    for the classes below."""
    search_agreement: float = 0.99
    """The neighbour search may use an approximate (inverted-file) index per fold, but only one whose
    neighbour votes match exact search on this share of held-out sample rows at least (measured at fit,
    recorded in provenance); 1.0 keeps the search exact."""
    min_posterior: float = 0.55
    """Flag a record only when the calibrated posterior that its label is wrong is at least this (step 6);
    0 switches step 6 off (confident learning alone: no posterior bar, every class judged), for labels
    known to follow the features (images, curated classes) where random noise is the threat."""
    min_class_recall: float = 0.5
    """A class whose own sample rows the out-of-fold models name most likely less often than this (rows they
    confidently put in another class left out) is not judged (provenance: classes_not_recognised)."""
    confident_margin_min_noise: float = 0.05
    """The floor applies to a class whose share of wrong labels the previous pass estimated at this or more
    (on clean classes it would flag hard but correctly labelled rows: digits, 0.2% -> 1.9% of clean rows)."""

    def validate(self) -> None:
        check_int("detectors.label_flip.folds", self.folds, low=2, high=20)
        check_int("detectors.label_flip.neighbours", self.neighbours, low=1, high=200)
        check_int("detectors.label_flip.reference_size", self.reference_size, low=100, high=1_000_000)
        check_int("detectors.label_flip.fit_rows", self.fit_rows, low=100, high=10_000_000)
        check_int("detectors.label_flip.min_class_rows", self.min_class_rows, low=0)
        check_int("detectors.label_flip.top_neighbours", self.top_neighbours, low=0, high=50)
        check_number("detectors.label_flip.search_agreement", self.search_agreement, low=0.5, high=1.0)
        check_int("detectors.label_flip.passes", self.passes, low=1, high=5)
        check_number("detectors.label_flip.confident_margin", self.confident_margin, low=0.0, high=1.0)
        check_number("detectors.label_flip.min_posterior", self.min_posterior, low=0.0, high=1.0)
        check_number("detectors.label_flip.min_class_recall", self.min_class_recall, low=0.0, high=1.0)
        check_number("detectors.label_flip.confident_margin_min_noise", self.confident_margin_min_noise,
                     low=0.0, high=1.0)
        if self.weight != "auto":
            check_number("detectors.label_flip.weight", self.weight, low=0.0, high=1.0)
        if not isinstance(self.allow_custom_classifier, bool):
            raise ConfigError(
                f"detectors.label_flip.allow_custom_classifier must be true or false, got {self.allow_custom_classifier!r}"
            )
        if not isinstance(self.classifier_params, dict):
            raise ConfigError(
                f"detectors.label_flip.classifier_params must be a mapping, got {self.classifier_params!r}"
            )
        # Fails early with a clear message; imports only what the allow-list (or the opt-in) permits.
        make_classifier(self.classifier, self.classifier_params, self.allow_custom_classifier)


class LabelFlipDetector(Detector):
    name: ClassVar[str] = "label_flip"
    needs: ClassVar[frozenset[str]] = frozenset({"features", "label"})
    row_independent: ClassVar[bool] = True  # a row's score depends on the row and the state alone
    internal_threads: ClassVar[bool] = True  # the neighbour search is multi-threaded itself
    score_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    Params = LabelFlipParams
    colour = report.COLOUR  # how the report shows it: sanitizer/detectors/label_flip/report.py
    neighbour_keys = report.NEIGHBOUR_KEYS
    feature_keys = report.FEATURE_KEYS
    label_matrix = report.LABEL_MATRIX

    def describe(self, evidence: dict[str, Any]) -> list[str]:
        return report.describe(evidence)

    @staticmethod
    def fold_of(keys: np.ndarray, folds: int) -> np.ndarray:
        return (salted(keys, _FOLD_SALT) % np.uint64(folds)).astype(np.int64)

    # ------------------------------------------------------------------ fit

    def fit(self, sample: Batch, params: LabelFlipParams, seed: int):
        K = params.folds
        sample = bounded_sample(sample, params.fit_rows)
        classes, y = np.unique(sample.labels.astype(str), return_inverse=True)
        C = len(classes)
        if C < 2:
            return Skipped(f"needs at least two classes in the sample, found {C}")
        counts = np.bincount(y, minlength=C)
        min_rows = params.min_class_rows or K
        judged = counts >= min_rows
        if judged.sum() < 2:
            return Skipped(
                f"needs at least two classes with {min_rows} or more sample rows (for {K}-fold cross-fitting)"
            )
        fold = self.fold_of(sample.keys, K)
        X = sample.X
        if X.shape[1] == 0:
            return Skipped("no numeric feature columns (categorical and date columns are read beside numeric ones, "
                           "never alone)")
        if params.standardize:
            mean, scale = standardiser(X, sample.feature_names)  # robust to a few huge values; never inf/NaN
        else:
            mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        Z = standardise(X, mean, scale)
        encoding = MixedEncoding.fit(sample)  # None on a numeric table
        if encoding is not None:
            Z = encoding.design(Z, sample)

        first = _calibrate(params, seed, sample, Z, y, fold, classes, judged, mean, scale, np.ones(sample.n, dtype=bool),
                           encoding=encoding)
        if isinstance(first, Skipped):
            return first
        state, p, margin, joint, thresholds_t, wrong = first
        passes = 1
        flagged = margin > _row_thresholds(state.class_thresholds[y], wrong, params)
        first_pass = int(flagged.sum())
        while passes < params.passes and flagged.any():
            # Another pass: models and neighbour reference rebuilt without the rows the last pass flagged,
            # so heavy noise (or many flips into one class) no longer teaches the classifier the flips.
            rate = (joint.sum(axis=1) - np.diag(joint)) / np.maximum(counts, 1)
            again = _calibrate(params, seed, sample, Z, y, fold, classes, judged, mean, scale, ~flagged, rate,
                               encoding=encoding)
            if isinstance(again, Skipped):  # leaving the flagged rows out emptied a fold of classes
                break
            state, p, margin, joint, thresholds_t, wrong = again
            passes += 1
            now = margin > _row_thresholds(state.class_thresholds[y], wrong, params)
            if np.array_equal(now, flagged):
                break
            flagged = now
        class_thresholds = state.class_thresholds
        weight = state.weight
        R = len(state.ref_X)
        noisy_per_class = joint.sum(axis=1) - np.diag(joint)
        final = margin > _row_thresholds(class_thresholds[y], wrong, params)
        flagged_in_sample = int(final.sum())
        expected_false = float((1.0 - wrong[final]).sum())
        summary = {
            "classes": C,
            "folds": K,
            "classifier": params.classifier,
            "model_weight": round(float(weight), 3),
            "reference_rows": R,
            "estimated_label_errors_in_sample": round(float(noisy_per_class.sum()), 1),
            "estimated_noise_rate": round(float(noisy_per_class.sum() / max(sample.n, 1)), 4),
            "flagged_in_sample": flagged_in_sample,
            "noise_model": {
                "noise_rate": (None if state.transitions is None
                               else round(float(1.0 - np.mean(np.diag(state.transitions)[y])), 5)),
                "temperature": round(state.temperature, 3),
                "min_posterior": params.min_posterior,
                "expected_false_flags_in_sample": round(expected_false, 2),
                "expected_false_flag_rate": round(expected_false / max(sample.n, 1), 6),
            },
            "classes_not_judged": [str(classes[i]) for i in np.flatnonzero(~judged)][:50],
            "classes_not_recognised": [str(classes[i]) for i in np.flatnonzero(judged & ~state.recognised)][:50],
            "noise_by_class_pair": _top_pairs(joint, counts, classes),
            "per_class_confidence_threshold": {
                str(classes[i]): round(float(thresholds_t[i]), 4) for i in range(min(C, 100))
            },
            "per_class_margin_threshold": {
                str(classes[i]): (None if not math.isfinite(class_thresholds[i]) else round(float(class_thresholds[i]), 4))
                for i in range(min(C, 100))
            },
            "passes": passes,
            "flagged_in_sample_first_pass": first_pass,
            "neighbour_search": state.summary.get("neighbour_search"),
        }
        if encoding is not None:
            summary["mixed_columns"] = encoding.summary(params.classifier, params.classifier_params)
        return _replace(state, summary=summary)

    def recalibrate(self, state: LabelFlipState, new: Batch) -> LabelFlipState:
        """Fitted on a baseline: thresholds and noise model fitted again on the new data's sample
        (:mod:`sanitizer.detectors.label_flip.recalibrate`)."""
        from sanitizer.detectors.label_flip.recalibrate import recalibrate

        return recalibrate(state, new, self.fold_of)

    # ------------------------------------------------------------------ score

    MAX_CELLS: ClassVar[int] = 4_000_000  # rows x classes held at once while scoring

    def score(self, batch: Batch, state: LabelFlipState) -> Scores:
        rows = max(256, self.MAX_CELLS // max(len(state.classes), 1))
        if batch.n <= rows:
            return self._score(batch, state)
        parts, evidence = [], {}
        for a in range(0, batch.n, rows):
            b = min(a + rows, batch.n)
            part = self._score(batch.take(slice(a, b)), state)
            evidence.update({a + i: e for i, e in part.evidence.items()})
            parts.append(part)
        return Scores(
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.flagged for p in parts]),
            float("nan"),
            evidence,
            thresholds=np.concatenate([p.thresholds for p in parts]),
        )

    def _score(self, batch: Batch, state: LabelFlipState) -> Scores:
        n = batch.n
        if n == 0:
            return Scores(np.zeros(0), np.zeros(0, dtype=bool), float("nan"), thresholds=np.zeros(0))
        y = class_indices(batch.labels, state.classes)
        known = y >= 0
        judged = known & state.judged[np.maximum(y, 0)]
        Z = standardise(batch.X, state.mean, state.scale)
        if state.encoding is not None:
            Z = state.encoding.design(Z, batch)
        fold = self.fold_of(batch.keys, state.params.folds)
        p_model, p_knn, neighbours = _opinions(state, Z, fold)
        p = state.weight * p_model + (1.0 - state.weight) * p_knn
        yy = np.maximum(y, 0)
        margin = np.where(judged, _margin(p, yy), np.nan)
        wrong = _posterior_wrong(p, yy, state.temperature, state.transitions)
        thresholds = np.where(judged, _row_thresholds(state.class_thresholds[yy], wrong, state.params), np.nan)
        with np.errstate(invalid="ignore"):
            flagged = judged & (margin > thresholds)
        evidence = {}
        for i in np.flatnonzero(flagged):
            given = int(y[i])
            others = p[i].copy()
            others[given] = -1.0
            suggested = int(np.argmax(others))
            nb = neighbours[i]
            evidence[int(i)] = {
                "given_label": state.classes[given],
                "suggested_label": state.classes[suggested],
                "p_given": round(float(p[i, given]), 4),
                "p_label_wrong": round(float(wrong[i]), 4),
                "p_suggested": round(float(p[i, suggested]), 4),
                "model_p_given": round(float(p_model[i, given]), 4),
                "model_p_suggested": round(float(p_model[i, suggested]), 4),
                "neighbour_agreement": round(float(np.mean(state.ref_labels[nb] == given)), 3),
                "neighbours": [
                    {"id": str(state.ref_ids[j]), "label": state.classes[int(state.ref_labels[j])]}
                    for j in nb[: state.params.top_neighbours]
                ],
                "threshold": round(float(thresholds[i]), 4),
            }
            if state.encoding is not None:
                named = categorical_evidence(state, Z[i], int(fold[i]), given, suggested)
                if named:
                    evidence[int(i)]["categorical"] = named
        return Scores(margin, flagged, float("nan"), evidence, thresholds=thresholds)

    def summary(self, state: LabelFlipState) -> dict[str, Any]:
        return dict(state.summary)
