"""Drift of text, image and embedding columns, read through their representation vectors.

The baseline's vectors fix the view: their mean and top principal components. Both sets of vectors are
projected onto those components, and each component is compared like a numeric column (Jensen-Shannon
distance on the baseline's quantile bins). The score is the largest distance over the components, the
threshold the largest null threshold (each component at ``alpha / components``).
"""

from __future__ import annotations

import numpy as np

from sanitizer.drift.statistics import bin_counts, js_distance, quantile_edges
from sanitizer.drift.thresholds import js_p_value, js_threshold


def principal_axes(baseline: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's mean (d,) and its top principal directions (k, d), k <= components."""
    mean = baseline.mean(axis=0)
    _, _, axes = np.linalg.svd(baseline - mean, full_matrices=False)
    k = max(1, min(components, axes.shape[0], len(baseline) - 1))
    return mean, axes[:k]


def vector_drift(baseline: np.ndarray, new: np.ndarray, *, components: int = 5, bins: int = 10,
                 alpha: float = 0.01) -> dict:
    """Drift between two (n, d) float arrays of representation vectors.

    Returns ``value`` (the largest per-component JS distance), ``null_threshold``, ``p_value`` (the
    smallest per-component p-value times the number of components, at most 1), ``component`` (which one
    moved most) and ``per_component`` (the distances).
    """
    baseline = np.asarray(baseline, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    if baseline.ndim != 2 or new.ndim != 2 or baseline.shape[1] != new.shape[1]:
        raise ValueError(f"vector drift needs two (n, d) arrays of one width, got {baseline.shape} and {new.shape}")
    if len(baseline) < 2 or len(new) < 1:
        return {"value": None, "null_threshold": None, "p_value": None, "component": None,
                "per_component": [], "reason": "too few vectors to compare"}
    mean, axes = principal_axes(baseline, components)
    base_proj, new_proj = (baseline - mean) @ axes.T, (new - mean) @ axes.T
    k = axes.shape[0]
    distances, nulls, p_values = [], [], []
    for c in range(k):
        edges = quantile_edges(base_proj[:, c], bins)
        p, q = bin_counts(base_proj[:, c], edges), bin_counts(new_proj[:, c], edges)
        occupied = int(((p + q) > 0).sum())
        distances.append(js_distance(p, q))
        nulls.append(js_threshold(len(baseline), len(new), occupied, alpha / k))
        p_values.append(js_p_value(distances[-1], len(baseline), len(new), occupied))
    worst = int(np.argmax(distances))
    return {"value": float(distances[worst]), "null_threshold": float(max(nulls)),
            "p_value": float(min(1.0, min(p_values) * k)), "component": worst,
            "per_component": [float(d) for d in distances]}
