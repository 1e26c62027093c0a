"""``label_flip``'s fitted state and one calibration pass: the K fold models, the neighbour reference, the
blend weight, the confident joint and the per-class thresholds (steps 2-4 and 6 of
:mod:`sanitizer.detectors.label_flip.detector`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any

import numpy as np

from sanitizer.detectors.base import Skipped
from sanitizer.detectors.label_flip.calibration import (
    _choose_weight,
    _class_thresholds,
    _confident_joint,
    _margin,
    _opinions,
    _with_fold_indexes,
)
from sanitizer.detectors.label_flip.classifiers import make_classifier
from sanitizer.detectors.label_flip.mixed import MixedEncoding, fit_mixed_model
from sanitizer.detectors.label_flip.noise import _noise_model, _posterior_wrong, _recognised


@dataclass(frozen=True)
class LabelFlipState:
    params: Any  # LabelFlipParams
    classes: tuple[str, ...]
    judged: np.ndarray  # (C,) bool: class has enough rows to be judged
    mean: np.ndarray
    scale: np.ndarray
    models: tuple[Any, ...]  # K fitted classifiers; model f never saw fold f
    model_classes: tuple[np.ndarray, ...]  # per model: class indices of its predict_proba columns
    ref_X: np.ndarray  # (R, d) standardised reference rows
    ref_labels: np.ndarray  # (R,) class indices
    ref_folds: np.ndarray  # (R,)
    ref_ids: np.ndarray  # (R,) record ids, for evidence
    fold_index: tuple[Any, ...]  # per fold: NeighbourIndex over the reference rows outside it (None: no rows)
    fold_members: tuple[np.ndarray, ...]  # per fold: positions in the reference of those rows
    weight: float
    class_thresholds: np.ndarray  # (C,) margin threshold per given class
    summary: dict
    temperature: float = 1.0  # calibrates the blended probabilities (step 6)
    transitions: np.ndarray | None = None  # (C, C) P(given label | true label), fitted with the temperature
    recognised: np.ndarray | None = None  # (C,) bool: classes the models can recognise (step 6)
    encoding: MixedEncoding | None = None  # categorical and date columns (mixed.py); None: numeric only


def _calibrate(params, seed, sample, Z, y, fold, classes, judged, mean, scale, keep, prior_rate=None, encoding=None):
    """Fit the K fold models and the reference on the ``keep`` rows; calibrate blend and thresholds on all rows.

    ``encoding`` (a table with categorical or date columns): ``Z`` is its design matrix, the neighbour
    reference holds its linear columns.

    ``prior_rate`` (a later pass): each class's share of wrong labels as the previous pass estimated it;
    classes at or above ``confident_margin_min_noise`` get the confident-margin floor on their count."""
    K, C = params.folds, len(classes)
    models, model_classes = [], []

    def make():
        return make_classifier(params.classifier, params.classifier_params, params.allow_custom_classifier)

    for f in range(K):
        train = (fold != f) & keep
        if len(np.unique(y[train])) < 2:
            return Skipped(f"fold {f} leaves fewer than two classes to train on; the sample is too small")
        random_state = (seed * 7919 + f) % (2**32)
        if encoding is not None:  # a mixed table: Z is the design matrix of mixed.py
            model = fit_mixed_model(make, params.classifier, params.classifier_params, encoding, Z[train], y[train],
                                    random_state)
            models.append(model)
            model_classes.append(np.asarray(model.classes_, dtype=np.int64))
            continue
        model = make()
        if "random_state" in model.get_params():
            model.set_params(random_state=random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(Z[train], y[train])
        models.append(model)
        model_classes.append(np.asarray(model.classes_, dtype=np.int64))

    # Reference rows for the neighbour search: the first reference_size kept rows of the sample
    # (the sample is ordered by its random priority, so this is itself a uniform subsample).
    ref = np.flatnonzero(keep)[: params.reference_size]
    state = LabelFlipState(
        params=params,
        classes=tuple(str(c) for c in classes),
        judged=judged,
        mean=mean,
        scale=scale,
        models=tuple(models),
        model_classes=tuple(model_classes),
        ref_X=np.ascontiguousarray(Z[ref] if encoding is None else Z[ref, : encoding.linear_width]),
        ref_labels=y[ref],
        ref_folds=fold[ref],
        ref_ids=np.asarray(sample.ids[ref], dtype=object),
        fold_index=(),
        fold_members=(),
        weight=0.5,
        class_thresholds=np.zeros(C),
        summary={},
        encoding=encoding,
    )
    state = _with_fold_indexes(state, Z, fold, seed)
    # Out-of-fold opinions on the sample calibrate everything below.
    p_model, p_knn, _ = _opinions(state, Z, fold)
    weight = _choose_weight(params.weight, p_model, p_knn, y)
    p = weight * p_model + (1.0 - weight) * p_knn
    joint, thresholds_t = _confident_joint(p, y, C)
    noisy_per_class = joint.sum(axis=1) - np.diag(joint)
    margin = _margin(p, y)
    temperature, transitions = _noise_model(p, y, np.flatnonzero(judged[y]))
    wrong = _posterior_wrong(p, y, temperature, transitions)
    class_thresholds = _class_thresholds(margin, y, noisy_per_class, judged, params, prior_rate)
    recognised = _recognised(p, y, C, params) if params.min_posterior > 0 else np.ones(C, dtype=bool)
    class_thresholds = np.where(judged & recognised, class_thresholds, np.inf)
    state = _replace(state, weight=float(weight), class_thresholds=class_thresholds, temperature=temperature,
                     transitions=transitions, recognised=recognised)
    return state, p, margin, joint, thresholds_t, wrong

