"""With a baseline, detectors that calibrate on their sample's own noise calibrate again on the new data.

The detectors fit on the baseline's sample; a detector with a ``recalibrate(state, new_sample)`` method
(``label_flip``: thresholds and noise model) is then handed the new data's sample, prepared once as scoring
prepares a batch (:func:`prepared`), and returns its state calibrated for the new data; a detector that
learns from the new data alone (``backdoor``: its trigger search) is fitted on that sample instead. The
same prepared sample gives the image and text columns' vectors for their drift (:func:`media_vectors`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sanitizer.beam.fit import FitOnNewData, fit_one
from sanitizer.beam.media import with_media
from sanitizer.beam.threads import one_thread_per_library_call
from sanitizer.detectors import REGISTRY
from sanitizer.detectors.base import Batch, Skipped


def prepared(sample: Batch, fitted: tuple, fill) -> Batch:
    """``sample`` as scoring prepares a batch: missing values filled with the baseline's medians, each image
    and text column's vectors from the representations fitted on the baseline (``fitted``: fit_timed's
    (states, seconds, media)) appended to its features."""
    return with_media(sample.filled(fill), fitted[2])


def recalibrate_states(fitted: tuple, new: Batch) -> dict[str, Any]:
    """The fitted states, each recalibrated on the new data's :func:`prepared` sample where its detector can,
    and the detectors that learn from the new data (:class:`~sanitizer.beam.fit.FitOnNewData`) fitted on it;
    side by side, as the fits ran (``backdoor`` searches the new sample for triggers while ``label_flip``
    refits its thresholds)."""
    out = dict(fitted[0])
    todo = []
    for name, state in fitted[0].items():
        if isinstance(state, FitOnNewData):
            todo.append((name, state, None))
            continue
        again = getattr(REGISTRY[name](), "recalibrate", None)
        if again is not None and not isinstance(state, Skipped) and new.n:
            todo.append((name, state, again))

    def one(item):
        name, state, again = item
        if again is not None:
            return again(state, new)
        if not new.n:
            return Skipped("the new data's sample is empty")
        state, error, _ = fit_one(name, new, state.params, state.seed)
        if error is not None:
            raise error
        return state

    if len(todo) > 1:
        one_thread_per_library_call()
        with ThreadPoolExecutor(len(todo)) as pool:
            done = list(pool.map(one, todo))
    else:
        done = [one(item) for item in todo]
    out.update({name: state for (name, _, _), state in zip(todo, done)})
    return out


def media_vectors(baseline_sample: Batch, new: Batch, fitted: tuple, fill) -> dict[str, tuple]:
    """Each image and text column's representation vectors on the baseline's sample and on the new data's
    :func:`prepared` sample, ``{column: (baseline (n, d), new (m, d))}``, for their drift
    (:func:`sanitizer.drift.vector_drift`); empty when the data has no such column."""
    media = fitted[2]
    if not media or not new.n or not baseline_sample.n:
        return {}
    base = prepared(baseline_sample, fitted, fill)
    out = {}
    for name in media:
        cols = [j for j, f in enumerate(base.feature_names) if f.startswith(f"{name}:")]
        if cols:
            out[name] = (np.asarray(base.X[:, cols], dtype=np.float64), np.asarray(new.X[:, cols], dtype=np.float64))
    return out
