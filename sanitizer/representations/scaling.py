"""Standardising features robustly: a leaf module that detectors and embeddings share."""

from __future__ import annotations

import re

import numpy as np

FENCE_WIDTHS = 50.0
"""How far outside the middle of the data (in widths of its interquartile range) a value may lie
before it stops counting at full size toward a feature's mean and spread."""
Z_LIMIT = 1_000.0
"""Standardised values are clipped to +-Z_LIMIT: far enough that every ordinary value keeps its place,
near enough that float32 neighbour searches and classifiers never see inf."""


def blocks(names) -> list[np.ndarray]:
    """The column positions of each representation's vector among feature ``names``: the columns named
    ``COLUMN:0``, ``COLUMN:1``, ... of one image or text column (:mod:`sanitizer.beam.media`)."""
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names or ()):
        match = _DIMENSION.fullmatch(str(name))
        if match:
            groups.setdefault(match.group(1), []).append(j)
    return [np.array(cols) for cols in groups.values() if len(cols) > 1]


_DIMENSION = re.compile(r"(.+):(\d+)")


def standardiser(X: np.ndarray, names=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (mean, scale) for :func:`standardise`, robust to a few huge values.

    The mean and standard deviation are computed on values winsorised to a wide fence: the
    interquartile range (or, for a feature that is mostly one value, the 5-95% or 1-99% range, or
    failing those 1) widened ``FENCE_WIDTHS`` times on each side. Ordinary data has nothing out
    there, so the result is the plain mean and std. A handful of planted 1e30s would otherwise own
    the std and squeeze every other row to ~0, blinding the detector; and a mean or std of values
    near float64's limit would overflow to inf and NaN every standardised value.

    With the feature ``names``, the dimensions of an image or text column's vector (:func:`blocks`) share
    one scale, the root mean square of their own: scaling each alone would give a direction that barely
    varies (noise) the weight of the main ones.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        d = X.shape[1] if X.ndim == 2 else 0
        return np.zeros(d), np.ones(d)
    q = np.quantile(X, [0.01, 0.05, 0.25, 0.75, 0.95, 0.99], axis=0)
    lo, hi = q[2], q[3]
    with np.errstate(over="ignore", invalid="ignore"):
        width = hi - lo
        for a, b in ((1, 4), (0, 5)):
            narrow = ~(width > 0)
            lo, hi, width = np.where(narrow, q[a], lo), np.where(narrow, q[b], hi), np.where(narrow, q[b] - q[a], width)
        width = np.where(np.isfinite(width) & (width > 0), width, np.maximum(np.abs(hi), 1.0))
        low = np.nan_to_num(lo - FENCE_WIDTHS * width, neginf=-np.finfo(np.float64).max / 4)
        high = np.nan_to_num(hi + FENCE_WIDTHS * width, posinf=np.finfo(np.float64).max / 4)
        fenced = np.clip(X, low, high)
        mean = fenced.mean(axis=0)
        scale = fenced.std(axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    for cols in blocks(names):  # one scale for a representation's vector: its geometry is the point
        scale[cols] = np.sqrt(np.mean(scale[cols] ** 2))
    return np.nan_to_num(mean), scale


def standardise(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - mean) / scale`` clipped to +-Z_LIMIT: always finite for finite X."""
    with np.errstate(over="ignore", invalid="ignore"):
        Z = (np.asarray(X, dtype=np.float64) - mean) / scale
    return np.clip(Z, -Z_LIMIT, Z_LIMIT, out=Z)
