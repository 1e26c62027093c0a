"""Image vectors that do not see a stamped patch.

A representation trained on the run's own labels (the built-in CNN) learns whatever predicts them, a
stamped trigger included: on such vectors the images that carry a patch look like the class the patch was
sent to, and no detector can see that their content says another class. So before an image is embedded,
the blocks that could be triggers are masked: the blocks the backdoor search would offer
(:func:`sanitizer.detectors.backdoor.patches.choose_patches` on the sample: one exact block content at one
place, on a small group of images nearly all of one label) are filled with the image's mean colour on the
images that hold them. Only those images change (on scikit-learn's digits, 16%: a dark block that is
nearly one digit's is masked too, which leaves the digit as it was); the rest are embedded as they are. A
carrier of a real patch is then embedded by what it shows, which the detectors compare with its label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sanitizer.detectors.backdoor.detector import BackdoorParams
from sanitizer.detectors.backdoor.patches import BLOCK, PatchColumns, choose_patches
from sanitizer.detectors.backdoor.tokens import PRESENT


def blind_blocks(pixels: np.ndarray, labels: np.ndarray) -> PatchColumns:
    """The blocks of the sample's images (uint8 (n, S, S, 3)) to mask before embedding."""
    labelled = np.array([v is not None for v in labels], dtype=bool)
    if labelled.sum() < 2:
        return PatchColumns((), (), int(pixels.shape[1]) if pixels.ndim == 4 else 0)
    classes, y = np.unique(labels[labelled].astype(str), return_inverse=True)
    return choose_patches(pixels[labelled][:, None], ("image",), y, len(classes), BackdoorParams())


def masked(pixels: np.ndarray, blocks: PatchColumns) -> tuple[np.ndarray, np.ndarray]:
    """(pixels with the listed blocks filled with each image's mean colour where the image holds them, the
    rows that changed)."""
    if not blocks.patches or len(pixels) == 0:
        return pixels, np.zeros(0, dtype=np.int64)
    holds = blocks.codes(pixels[:, None]) == PRESENT  # (n, blocks)
    rows = np.flatnonzero(holds.any(axis=1))
    if not len(rows):
        return pixels, rows
    out = pixels.copy()
    mean = np.zeros((len(pixels), 3), dtype=np.uint8)
    mean[rows] = pixels[rows].reshape(len(rows), -1, 3).mean(axis=1).astype(np.uint8)
    for i, (_, block, _) in enumerate(blocks.patches):
        x0, y0, _, _ = blocks.region(block)
        on = np.flatnonzero(holds[:, i])
        out[on, y0:y0 + BLOCK, x0:x0 + BLOCK] = mean[on, None, None, :]
    return out, rows


@dataclass(frozen=True)
class TriggerBlind:
    """A fitted image representation whose images are embedded with the trigger-like blocks masked."""

    inner: Any
    blocks: PatchColumns

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, pixels: np.ndarray, keys: np.ndarray) -> np.ndarray:
        return self.inner.embed(masked(pixels, self.blocks)[0], keys)

    def describe(self) -> dict[str, Any]:
        regions = [list(self.blocks.region(block)) for _, block, _ in self.blocks.patches]
        return {**self.inner.describe(), "masked_blocks": regions,
                "masked_blocks_note": "blocks that could be a stamped trigger, filled with the image's mean "
                                      "colour on the images that hold them before they are embedded"}
