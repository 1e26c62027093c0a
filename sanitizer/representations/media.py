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

Each fold's model learns its own coordinates (an SVD's directions, a network's features come in any
rotation), so a record embedded by model 1 would sit apart from every record embedded by model 0 and a
detector comparing records would see the folds, not the data. Each model's vectors are therefore rotated
onto model 0's (:func:`fold_rotations`: the orthogonal Procrustes rotation that best maps model ``f``'s
vectors of a set of anchor rows onto model 0's vectors of the same rows); a rotation keeps distances,
so each model's own geometry is untouched.

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


ANCHOR_ROWS = 2_000
"""Sample rows each fold model embeds to fit the rotations between the folds' spaces."""


def anchors(keys: np.ndarray, rows: int = ANCHOR_ROWS) -> np.ndarray:
    """Positions of at most ``rows`` sample rows, chosen by a salted hash of their keys, in key-hash order."""
    order = np.argsort(salted(np.asarray(keys, dtype=np.uint64), "media-anchor"), kind="stable")
    return np.sort(order[:rows])


def procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal ``R`` (d, d) minimising ``|source @ R - target|`` (rows: the same records)."""
    u, _, vt = np.linalg.svd(np.asarray(source, np.float64).T @ np.asarray(target, np.float64))
    return (u @ vt).astype(np.float32)


def fold_rotations(embed_with, folds: int, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per fold, the rotation of its model's vectors onto model 0's, fitted on the anchor ``values``
    (``embed_with(f, values)`` gives model ``f``'s vectors)."""
    target = embed_with(0, values)
    out = [np.eye(target.shape[1], dtype=np.float32)]
    out.extend(procrustes(embed_with(f, values), target) for f in range(1, folds))
    return tuple(out)


def rotate(z: np.ndarray, rotation: np.ndarray | None) -> np.ndarray:
    """``z @ rotation`` in float64, row by row in the same order whatever the batch (einsum's own loops,
    not a BLAS kernel that blocks by batch size), so a row's vector never depends on its batch."""
    if rotation is None:
        return z
    return np.einsum("ij,jk->ik", np.asarray(z, np.float64), np.asarray(rotation, np.float64)).astype(np.float32)
