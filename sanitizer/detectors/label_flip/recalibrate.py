"""``label_flip`` against a trusted baseline: the baseline's models judge the new data's own noise.

Fitted on a vetted baseline, the fold models and the neighbour reference know what each class looks like,
but the thresholds and the noise model (steps 3-6 of :mod:`sanitizer.detectors.label_flip.detector`) were
calibrated on the baseline's noise - a few wrong labels at most, so its flip rates say a flip is nearly
impossible, and a new batch with a quarter of a class flipped would be judged by that belief. So the new
data's own sample is scored by the baseline's models (none of them trained on a new record, so nothing is
cross-fitted) and the confident joint, the class thresholds and the noise model's flip rates are fitted
again on it. The blend weight, the temperature that calibrates the blend, and which classes the models
recognise stay the baseline's: they are about the models, which the baseline's out-of-fold probabilities
judge best. Fitted on a poisoned batch, the temperature moves to explain the poison's labels, and ambiguous
clean rows then look wrong (a 10% backdoor into diamonds' ``Fair``: 2.2% of the clean rows held with the new
batch's temperature, 1.4% with the baseline's).

New rows unlike anything in the baseline (farther from their nearest reference row than 99% of the
reference rows are from theirs) are scored as any other row, but left out of that fit: a backdoor's
triggered rows, relabelled into one class, would otherwise count as that class's noise, and a class
estimated three-quarters wrong holds its clean but ambiguous rows (a 10% backdoor into diamonds' ``Fair``:
119 of its clean rows held as flips). Where over half the new rows are unlike the baseline, the data has
moved, not a few rows, and every row is used.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sanitizer.detectors.base import Batch, bounded_sample, class_indices
from sanitizer.detectors.label_flip.calibration import (_class_thresholds, _confident_joint, _margin, _neighbours,
                                                        _opinions, _searched)
from sanitizer.detectors.label_flip.fitting import LabelFlipState
from sanitizer.detectors.label_flip.noise import _noise_model, _posterior_wrong
from sanitizer.representations.scaling import standardise

MIN_ROWS = 50
"""A new sample smaller than this keeps the baseline's calibration (too few rows to estimate noise from)."""
UNLIKE_QUANTILE = 0.99
"""A new row is unlike the baseline when its nearest reference row is farther than this quantile of the
reference rows' own nearest-neighbour distances (each searched outside its fold, as new rows are)."""
PROBE_ROWS = 2_000
"""Reference rows whose nearest-neighbour distances set that cut."""
CHUNK = 2_048


def recalibrate(state: LabelFlipState, new: Batch, fold_of) -> LabelFlipState:
    """``state`` with thresholds and noise model fitted on ``new`` (the new data's sample), its models and
    reference unchanged; ``state`` itself when the new sample holds fewer than MIN_ROWS known labels."""
    params = state.params
    new = bounded_sample(new, params.fit_rows)
    y = class_indices(new.labels, state.classes)
    known = np.flatnonzero(y >= 0)
    if len(known) < MIN_ROWS:
        return state
    new, y = new.take(known), y[known]
    C = len(state.classes)
    Z = standardise(new.X, state.mean, state.scale)
    if state.encoding is not None:
        Z = state.encoding.design(Z, new)
    p_model, p_knn, neighbours = _opinions(state, Z, fold_of(new.keys, params.folds))
    p = state.weight * p_model + (1.0 - state.weight) * p_knn
    unlike = unlike_baseline(state, _searched(state, Z), neighbours)
    if len(y) - unlike.sum() >= max(MIN_ROWS, 0.5 * len(y)):
        p, y = p[~unlike], y[~unlike]
    joint, _ = _confident_joint(p, y, C)
    noisy = joint.sum(axis=1) - np.diag(joint)
    counts = np.bincount(y, minlength=C)
    margin = _margin(p, y)
    temperature, transitions = _noise_model(p, y, np.flatnonzero(state.judged[y]), (state.temperature,))
    wrong = _posterior_wrong(p, y, temperature, transitions)
    thresholds = _class_thresholds(margin, y, noisy, state.judged, params, noisy / np.maximum(counts, 1))
    recognised = state.recognised if state.recognised is not None else np.ones(C, dtype=bool)
    thresholds = np.where(state.judged & recognised, thresholds, np.inf)
    summary = dict(state.summary)
    summary["calibrated_on_new_data"] = {
        "rows": int(len(y)),
        "rows_unlike_baseline_left_out": int(len(unlike) - len(y)),
        "estimated_noise_rate": round(float(noisy.sum() / max(len(y), 1)), 4),
        "noise_per_class": {c: int(round(v)) for c, v in zip(state.classes, noisy)},
        "baseline_estimated_noise_rate": state.summary.get("estimated_noise_rate"),
    }
    return replace(state, class_thresholds=thresholds, temperature=temperature, transitions=transitions,
                   summary=summary)


def nearest_distance(S: np.ndarray, ref: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(n,) each row of ``S``'s distance to the nearest of its ``neighbours`` (indices into ``ref``)."""
    out = np.empty(len(S))
    for lo in range(0, len(S), CHUNK):
        gap = S[lo:lo + CHUNK, None, :] - ref[neighbours[lo:lo + CHUNK]]
        out[lo:lo + CHUNK] = np.sqrt(np.einsum("nkd,nkd->nk", gap, gap).min(axis=1))
    return out


def unlike_baseline(state: LabelFlipState, S: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """(n,) bool: rows of ``S`` (the searched columns) farther from their nearest reference row than
    UNLIKE_QUANTILE of the reference rows are from theirs; all False for a reference too small to tell."""
    R = len(state.ref_X)
    if R < MIN_ROWS or neighbours.shape[1] == 0:
        return np.zeros(len(S), dtype=bool)
    probe = np.arange(0, R, max(1, R // PROBE_ROWS))
    own = _neighbours(state, state.ref_X[probe], state.ref_folds[probe])
    cut = np.quantile(nearest_distance(state.ref_X[probe], state.ref_X, own), UNLIKE_QUANTILE)
    return nearest_distance(S, state.ref_X, neighbours) > cut
