"""Whether two images whose perceptual hashes are close are copies by their pixels: the same layout of light
and dark, and nearly the same colours.

Both tests look at the images reduced by area averaging, where what re-encoding disturbs (JPEG's ringing
around edges, its colour kept at half resolution) averages out and what makes another image does not; each
takes the better of the nine one-pixel moves of the first image, so a copy moved by a pixel lines up again:

- **shape** (:data:`SHAPE`): the correlation of the two images' luma (ITU-R 601) at half resolution (16x16
  for 32x32 images). JPEG keeps luma at full resolution and a correlation ignores a change of brightness or
  contrast, so a re-encoded, brightened or slightly recoloured copy stays near 1; another font's glyph, or
  another scan of the same digit, is another layout. Colour channels are not compared one by one: JPEG
  halves their resolution, which takes a thin glyph's colour apart;
- **colour** (:data:`COLOUR`): the mean absolute RGB difference (0-255) of the images' 8x8 blocks (4x4
  pixels each at 32x32), in nine blocks of ten (its 90th percentile). A slight recolour moves every block a
  little; the same shape painted in other colours moves the glyph's blocks or the background's far, and a
  percentile, unlike a mean over the image, does not let a background of the same colour hide a glyph of
  another.

Measured on 600 of ``bench/media_quality.py``'s 6,000 painted digits (scans and rendered glyphs, random
colours): a copy recoloured (hue +10/256, brightness x1.05) keeps a luma correlation of 0.972 or more (0.989
for 99 %) and a colour difference of 22 or less for 99 % (24.7 at most); re-encoded as JPEG at quality 75,
0.990 and 13.8. Among the 6,000 as shipped, 8 pairs of different images within 6 hash bits pass both tests
(similar scans of one digit in similar colours).
"""

from __future__ import annotations

import numpy as np

from sanitizer.detectors.duplicates.phash import LUMA, area_matrix

SHAPE = 0.97
"""The smallest luma correlation (at :data:`HALF`) of two near copies."""
COLOUR = 22.0
"""The largest colour difference (of 0-255, at :data:`GRID`, 90th percentile of the blocks) of two near copies."""
HALF = 16
"""The side the shape test compares at (or the image's own, when smaller)."""
GRID = 8
"""The side of the grid of blocks the colour test compares."""
QUANTILE = 0.9
_PAIRS = 512  # pairs reduced at a time: a few MiB of float32 working copies


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour, shape) of pairs of ``(n, S, S, 3)`` uint8 images: the smallest colour difference and the
    largest luma correlation between ``b`` and ``a`` moved by up to one pixel each way."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4 or a.shape[3] != 3:
        raise ValueError(f"two (n, S, S, 3) image stacks of one shape expected, got {a.shape} and {b.shape}")
    n, side = len(a), a.shape[1]
    half = area_matrix(side, min(HALF, side)).astype(np.float32)
    grid = area_matrix(side, min(GRID, side)).astype(np.float32)
    idx = np.arange(side)
    colour = np.full(n, np.inf)
    shape = np.full(n, -1.0)
    for lo in range(0, n, _PAIRS):
        x = np.moveaxis(a[lo:lo + _PAIRS], 3, 1).astype(np.float32)  # (m, 3, S, S)
        y = np.moveaxis(b[lo:lo + _PAIRS], 3, 1).astype(np.float32)
        y_luma = _centred(_luma(half @ y @ half.T))
        y_grid = grid @ y @ grid.T
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                moved = x[:, :, np.clip(idx - dy, 0, side - 1)][:, :, :, np.clip(idx - dx, 0, side - 1)]
                c = _block_difference(grid @ moved @ grid.T, y_grid)
                s = _correlation(_centred(_luma(half @ moved @ half.T)), y_luma)
                colour[lo:lo + _PAIRS] = np.minimum(colour[lo:lo + _PAIRS], c)
                shape[lo:lo + _PAIRS] = np.maximum(shape[lo:lo + _PAIRS], s)
    return colour, shape


def copies(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) bool: pairs of images that pass both tests."""
    colour, shape = agreement(a, b)
    return (colour <= COLOUR) & (shape >= SHAPE)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """(m, 3, s, s) -> (m, s * s)."""
    return np.tensordot(LUMA.astype(np.float32), rgb, axes=(0, 1)).reshape(len(rgb), -1)


def _centred(v: np.ndarray) -> np.ndarray:
    return v - v.mean(axis=1, keepdims=True)


def _correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise correlation of centred rows; 0 where either is flat (a blank image has no shape)."""
    vx, vy = (x * x).sum(axis=1, dtype=np.float64), (y * y).sum(axis=1, dtype=np.float64)
    flat = (vx < 1e-6 * x.shape[1]) | (vy < 1e-6 * y.shape[1])
    c = (x * y).sum(axis=1, dtype=np.float64) / np.sqrt(np.where(flat, 1.0, vx * vy))
    return np.where(flat, 0.0, c)


def _block_difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(m,): the :data:`QUANTILE` of the blocks' mean absolute RGB difference."""
    d = np.abs(x - y).mean(axis=1).reshape(len(x), -1)
    return np.quantile(d, QUANTILE, axis=1)
