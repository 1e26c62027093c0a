"""Shared types and helpers of the detectors.

:class:`~sanitizer.data.batch.Batch` (what a detector sees: the one batch type, from
:mod:`sanitizer.data`), :class:`Scores` (what it says about each row) and :class:`Skipped` (the
state of a detector that cannot fit on this data) are the types of the detector contract, which
lives in :mod:`sanitizer.detectors.contract`; below them, helpers several detectors share
(bounded samples, class indices, score calibration, robust standardising).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sanitizer.data.batch import Batch


@dataclass(frozen=True)
class Scores:
    """What a detector said about each row of a batch."""

    score: np.ndarray  # (n,) float64, higher = more suspicious, NaN = not scored
    flagged: np.ndarray  # (n,) bool, score crossed the threshold
    threshold: float
    evidence: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Row index -> JSON-serialisable evidence, for flagged rows only."""
    thresholds: np.ndarray | None = None
    """Per-row thresholds, for detectors whose threshold depends on the row (e.g. its class)."""
    codes: dict[int, str] | None = None
    """Row index -> the reason code of a flagged row, for a detector whose flags are of several kinds
    (``duplicates``: duplicate, label_conflict, leak); by default the detector's name."""


@dataclass(frozen=True)
class Skipped:
    """State of a detector that cannot run on this data, with the reason (recorded in provenance)."""

    reason: str


# --------------------------------------------------------------------------- labels and samples

def bounded_sample(sample: Batch, rows: int, per_class: int = 50) -> Batch:
    """The first ``rows`` rows of the sample (it is ordered by random priority, so they are a
    uniform subsample) plus up to ``per_class`` rows of every class, so rare classes stay represented;
    every feature kind (the embedding too) and role of those rows is kept."""
    if sample.n <= rows:
        return sample
    codes, _ = pd.factorize(sample.labels)
    rank_in_class = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    keep = np.flatnonzero((np.arange(sample.n) < rows) | (rank_in_class < per_class))
    return sample.take(keep)


def class_indices(labels: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Each label's index in ``classes`` (compared as strings), -1 for a label the state never saw."""
    index = {c: i for i, c in enumerate(classes)}
    codes, uniques = pd.factorize(labels)
    lookup = np.array([index.get(str(u), -1) for u in uniques] + [-1], dtype=np.int64)
    return lookup[codes]


# --------------------------------------------------------------------------- calibrating scores

UPPER_QUANTILE = 0.99
"""The tail's second anchor: high enough to see a heavy natural tail, low enough that a few percent of
poison (which sits above it) does not set the slope that should expose it."""


CHOICE_ROWS = 1000
"""A calibration set this large chooses its tail shape (``DistanceCalibration.of(log_scale=True)``):
50 values beyond the 95th percentile. Smaller ones keep the straight line."""
CHOICE_QUANTILE = 0.95
"""Where the two tail shapes are compared with the data: far enough out to see the tail's shape, inside
the body that a few percent of poison (above it) does not reach."""


@dataclass(frozen=True)
class DistanceCalibration:
    """A score -> -log exceedance probability (nats), from the sample's out-of-fold scores: an
    exponential tail through their median and 90th percentile (a few percent of poison moves neither).
    With ``heavy_tail`` it is never steeper than the line from the 90th to the UPPER_QUANTILE percentile:
    scores in a space learnt on the sample from real tables (the built-in embedding) often have a heavy
    upper tail and many ties at the bottom, and a tail fitted to the middle alone would call their natural
    last percent improbable. Used for the outlier detector's k-NN distances and feature_collision's class
    margins."""

    median: float
    q90: float
    beta: float
    offset: float | None = None
    """Set: the line is fitted to ``log(distance + offset)`` (see ``of(log_scale=True)``)."""

    @staticmethod
    def of(distances: np.ndarray, heavy_tail: bool = False, log_scale: bool = False) -> "DistanceCalibration":
        """``heavy_tail``: the slope also explains the UPPER_QUANTILE (for scores whose natural upper tail is
        heavier than the middle suggests; see the class docstring).

        ``log_scale`` (k-NN distances among points): also fit the line to log distances, and keep
        whichever of the two predicts the sample's own CHOICE_QUANTILE better (with CHOICE_ROWS values
        or more). A point's k-NN distance is about ``(k / (n f(x)))^(1/D)`` for density f in D
        dimensions, and in the tail of a smooth distribution the chance of a lower density is about
        proportional to f, so ``-log p`` can grow like ``D log(distance)`` rather than like the
        distance: the natural far tail of a low-dimensional table (two money columns) is long, and a
        line in the distance itself calls its last percent improbable. Where the straight line fits
        (standardised, clipped coordinates in many dimensions) it stays."""
        values = distances[np.isfinite(distances)]
        if len(values) == 0:
            return DistanceCalibration(0.0, 0.0, 1.0)
        median, q90, upper = (float(v) for v in np.quantile(values, [0.5, 0.9, UPPER_QUANTILE]))
        beta = (q90 - median) / np.log(5.0)
        if heavy_tail:
            beta = max(beta, (upper - q90) / np.log(0.1 / (1.0 - UPPER_QUANTILE)))
        if not beta > 1e-12:
            beta = max(float(np.std(values)), 1e-12)
        line = DistanceCalibration(median, q90, float(beta))
        if not log_scale or len(values) < CHOICE_ROWS:
            return line
        offset = max(median * 0.01, 1e-12)  # a distance of 0 (duplicates) stays finite
        logs = DistanceCalibration.of(np.log(values + offset), heavy_tail)
        curve = DistanceCalibration(logs.median, logs.q90, logs.beta, offset)
        check = np.quantile(values, [CHOICE_QUANTILE])
        target = -np.log(1.0 - CHOICE_QUANTILE)
        miss_line = abs(float(line.nats(check)[0]) - target)
        miss_curve = abs(float(curve.nats(check)[0]) - target)
        return curve if miss_curve < miss_line else line

    def nats(self, distances: np.ndarray) -> np.ndarray:
        if self.offset is not None:
            distances = np.log(np.maximum(distances, 0.0) + self.offset)
        return np.maximum(np.log(10.0) + (distances - self.q90) / self.beta, 0.0)
