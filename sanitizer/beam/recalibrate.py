"""With a baseline, detectors that calibrate on their sample's own noise calibrate again on the new data.

The detectors fit on the baseline's sample; a detector with a ``recalibrate(state, new_sample)`` method
(``label_flip``: thresholds and noise model) is then handed the new data's sample, prepared as scoring
prepares a batch (missing values filled with the baseline's medians, image and text vectors from the
baseline's representations), and returns its state calibrated for the new data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sanitizer.beam.media import with_media
from sanitizer.detectors import REGISTRY
from sanitizer.detectors.base import Batch, Skipped


def recalibrate_states(fitted: tuple, new_sample: Batch, fill) -> dict[str, Any]:
    """The fitted states (``fitted``: fit_timed's (states, seconds, media)), each recalibrated on
    ``new_sample`` where its detector can."""
    states, _, media = fitted
    batch = with_media(new_sample.filled(fill), media)
    out = {}
    for name, state in states.items():
        detector = REGISTRY[name]()
        again = getattr(detector, "recalibrate", None)
        out[name] = state if again is None or isinstance(state, Skipped) or batch.n == 0 else again(state, batch)
    return out


def media_vectors(baseline_sample: Batch, new_sample: Batch, fitted: tuple, fill) -> dict[str, tuple]:
    """Each image and text column's representation vectors on the baseline's sample and on the new data's,
    ``{column: (baseline (n, d), new (m, d))}``, for their drift (:func:`sanitizer.drift.vector_drift`); empty
    when the data has no such column."""
    media = fitted[2]
    if not media:
        return {}
    base = with_media(baseline_sample.filled(fill), media)
    new = with_media(new_sample.filled(fill), media)
    out = {}
    for name in media:
        cols = [j for j, f in enumerate(base.feature_names) if f.startswith(f"{name}:")]
        if cols and base.n and new.n:
            out[name] = (np.asarray(base.X[:, cols], dtype=np.float64), np.asarray(new.X[:, cols], dtype=np.float64))
    return out
