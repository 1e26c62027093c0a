"""Representations of image and text columns: one interface, one module per way of making vectors.

The detectors judge an image or a text column through vectors, one per row, that a representation makes
from the column's values. A representation is fitted once, on the run's bounded sample, and then embeds
every batch inside the workers. The built-in ones are **cross-fitted**: the sample's rows are split into
``folds`` folds by a salted hash of their record keys; model ``f`` is fitted on the other folds' rows and
embeds every record of fold ``f`` (in the sample or not), so no record is embedded by a model that saw it.

Values, as the representations receive them (never the whole data set at once):

* images: ``uint8`` array ``(n, size, size, 3)``, decoded and resized in the worker
  (:mod:`sanitizer.representations.images`);
* text: object array ``(n,)`` of ``str``, each cut to the configured length (``None``: missing).

Every representation records what it used (``describe``): its kind, dimensions, folds, seed, and the
sha256 of any model file, for provenance.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from sanitizer.data.batch import salted

FOLDS = 2
"""Cross-fitting folds of the built-in representations."""
FOLD_SALT = "media-fold"


def fold_of(keys: np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """The cross-fitting fold of each record key: its model is the one fitted without this fold."""
    return (salted(keys, FOLD_SALT) % np.uint64(folds)).astype(np.int64)


class Fitted(Protocol):
    """A fitted representation of one column."""

    dim: int

    def embed(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(n, dim)`` float32 vectors for ``values`` (the rows of records ``keys``), each row by the model
        that did not see its fold. Deterministic: the same values and keys give the same vectors."""
        ...

    def describe(self) -> dict[str, Any]:
        """What was used, for provenance: ``kind``, ``dim``, ``folds``, ``seed``, ``sha256`` of a model file, ..."""
        ...


def embed_by_fold(models: list, keys: np.ndarray, values: np.ndarray, dim: int, embed_one) -> np.ndarray:
    """Rows of fold ``f`` embedded by ``embed_one(models[f], values[rows])``: the cross-fitted embedding."""
    out = np.zeros((len(values), dim), dtype=np.float32)
    fold = fold_of(keys, len(models))
    for f, model in enumerate(models):
        rows = np.flatnonzero(fold == f)
        if len(rows):
            out[rows] = embed_one(model, values[rows])
    return out
