"""What the victim's backbone reads in ``feature_collision``: a record's feature vector, or its image.

A backbone given with ``embedding_model`` is the victim's own feature extractor, and a poison is crafted
against what that extractor takes in. On a table of numbers that is the record's feature vector, float32
``(batch, n_features)``. When the data has an image column, the victim's backbone takes images: it is
applied to that column's decoded pixels instead, as float32 ``(batch, 3, S, S)`` in [0, 1], channels first
(``S`` the configured ``media.image_size``), the tensors the training loader hands the training job
(:mod:`sanitizer.training.media`). The column is ``embedding_image_column``, else the table's first image
column. The backbone is tried on a ``(2, 3, S, S)`` batch of zeros before the run and again when the
detector fits, so a model that does not map images to ``(batch, dim)`` stops the run with the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sanitizer.data.batch import IMAGE, Batch
from sanitizer.errors import ConfigError
from sanitizer.representations.embeddings import TorchScriptEmbedder, model_format, open_pinned
from sanitizer.representations.media_columns import IMAGE_SIZE

CHUNK = 1024
"""Images turned into float32 and embedded at a time (12 MiB at 32x32)."""
KEY = "detectors.feature_collision.embedding_image_column"


@dataclass(frozen=True)
class ImageInput:
    """The image column a backbone embeds, and the side its images are decoded to."""

    column: str
    size: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image as the backbone receives it: (3, size, size)."""
        return (3, self.size, self.size)

    def words(self) -> str:
        column = f"image column {self.column!r}" if self.column else "the first image column"
        return f"{column} as float32 (batch, 3, {self.size}, {self.size}) in [0, 1]"

    def embed(self, embedder: TorchScriptEmbedder, batch: Batch, rows: np.ndarray) -> np.ndarray:
        """(len(rows), dim) float64: the backbone's vectors of ``rows``' images, a chunk at a time."""
        names = batch.columns.get(IMAGE, ())
        if self.column not in names:
            raise ConfigError(f"image column {self.column!r}, which the feature_collision backbone embeds, is "
                              f"missing from the batch (its image columns: {list(names)})")
        pixels = batch.features[IMAGE]
        if pixels.shape[2:] != (self.size, self.size, 3):
            raise ConfigError(f"image column {self.column!r} arrives as {pixels.shape[2:]} pixels; the "
                              f"feature_collision backbone was fitted on {self.size}x{self.size} RGB")
        j = names.index(self.column)
        out = [embedder.embed(as_tensor_layout(pixels[rows[a:a + CHUNK], j])) for a in range(0, len(rows), CHUNK)]
        return np.concatenate(out) if out else np.zeros((0, embedder.dim))

    def describe(self) -> dict[str, Any]:
        return {"image_column": self.column, "input": self.words(), "input_shape": list(self.shape)}


def as_tensor_layout(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``(n, S, S, 3)`` pixels as float32 ``(n, 3, S, S)`` in [0, 1], channels first."""
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


def image_input(batch: Batch, column: str | None) -> ImageInput | None:
    """The image column of ``batch`` a backbone embeds: ``column`` (``embedding_image_column``), else the
    first; None when the batch has no image column and none is named."""
    names = batch.columns.get(IMAGE, ())
    if column is not None and column not in names:
        raise ConfigError(f"{KEY} is {column!r}, which is not an image column of the input "
                          f"(its image columns: {list(names) or 'none'})")
    if not names:
        return None
    return ImageInput(column or names[0], int(batch.features[IMAGE].shape[2]))


def open_image_backbone(path: str, sha256: str | None, image: ImageInput) -> TorchScriptEmbedder:
    """The pinned backbone (TorchScript or ONNX) at ``path``, tried on a ``(2, 3, S, S)`` batch of zeros:
    ConfigError, naming the column and the input it gets, unless it returns ``(2, dim)``."""
    try:
        sha, dim = open_pinned(path, sha256, (2, *image.shape), f"float32 (batch, 3, {image.size}, {image.size}) "
                                                                 "images in [0, 1]")
    except ConfigError as exc:
        raise ConfigError(f"{exc} (feature_collision embeds {image.words()})") from None
    return TorchScriptEmbedder(path, sha, dim, model_format(path, sha))


def check_backbone(path: str, sha256: str | None, n_features: int, image_columns: Sequence[str] | None,
                   image_size: int | None, column: str | None) -> None:
    """The planning-time check of a backbone. ``image_columns`` (None: not known) and ``image_size`` say
    what the input holds: with an image column the backbone must map ``(2, 3, S, S)`` images, without one
    ``(2, n_features)`` vectors. Not knowing the input, it must map one of the two (images at ``image_size``
    or the default side); the fit checks the data's own shape again."""
    size = int(image_size or IMAGE_SIZE)
    if image_columns is not None:
        names = tuple(image_columns)
        if column is not None and column not in names:
            raise ConfigError(f"{KEY} is {column!r}, which is not an image column of the input "
                              f"(its image columns: {list(names) or 'none'})")
        if names:
            open_image_backbone(path, sha256, ImageInput(column or names[0], size))
        else:
            TorchScriptEmbedder.open(path, n_features, sha256)
        return
    if n_features > 0:
        try:
            TorchScriptEmbedder.open(path, n_features, sha256)
            return
        except ConfigError as exc:
            numeric = exc
    try:
        open_image_backbone(path, sha256, ImageInput(column or "", size))
    except ConfigError as exc:
        raise (numeric if n_features > 0 else exc) from None
