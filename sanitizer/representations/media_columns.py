"""Image and text columns as the detectors' batches carry them, before any representation turns them into
vectors (:mod:`sanitizer.beam.media`).

* :class:`ImageValues`: every row's image decoded and resized to ``size x size`` RGB, uint8, in the worker,
  batch by batch (:func:`sanitizer.representations.images.decode_images`): the decoded pixels never exist
  for the whole data set, and the shards keep the user's original column untouched. A row whose image
  cannot be read (corrupt bytes, a missing file, a wrong-length pixel list, an image too large to decode
  safely) is a row-check problem: quarantined with the reason, never a traceback.
* :class:`TextValues`: every row's text cut to ``max_chars`` characters (what the representation reads);
  a missing text is ``None``, which a representation embeds as no words.

Both follow the encoder contract of :func:`sanitizer.data.extract.extract` (``name``, ``kind``, ``encode``),
and ``row_shape`` (a row's value shape); :class:`ImageValues` is ``checked``: its ``encode_checked`` gives the
values and ``{row: problem}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.batch import IMAGE, TEXT

IMAGE_SIZE = 32
"""Default side, in pixels, of the square every image is resized to for the representations."""
TEXT_CHARS = 2_000
"""Default number of characters of a text the representations read."""


@dataclass(frozen=True)
class ImageValues:
    """The encoder of one image column: ``layout`` (bytes, struct, path, pixels: see
    :func:`sanitizer.representations.images.image_layout`), the square ``size``, the folder relative paths
    are read from (``base``) and a pixel list's declared ``shape`` (H, W, C)."""

    kind: ClassVar[str] = IMAGE
    checked: ClassVar[bool] = True
    name: str
    layout: str
    size: int = IMAGE_SIZE
    base: str | None = None
    shape: tuple[int, int, int] | None = None

    @property
    def row_shape(self) -> tuple[int, ...]:
        return (self.size, self.size, 3)

    def encode_checked(self, column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, dict[int, str]]:
        """((n, size, size, 3) uint8 pixels, {row: why it could not be read}); an unreadable row's pixels are 0."""
        from sanitizer.representations.images import decode_images

        return decode_images(column, self.layout, self.size, base=self.base, shape=self.shape)

    def encode(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        return self.encode_checked(column)[0]


@dataclass(frozen=True)
class TextValues:
    """The encoder of one text column: its values as ``str`` cut to ``max_chars``, None where missing."""

    kind: ClassVar[str] = TEXT
    checked: ClassVar[bool] = False
    name: str
    max_chars: int = TEXT_CHARS

    @property
    def row_shape(self) -> tuple[int, ...]:
        return ()

    def encode(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """(n,) object array of str (at most ``max_chars`` characters each) or None."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = pc.cast(column, pa.string())
        cut = pc.utf8_slice_codeunits(column, 0, self.max_chars)
        return np.asarray(cut.to_numpy(zero_copy_only=False), dtype=object)
