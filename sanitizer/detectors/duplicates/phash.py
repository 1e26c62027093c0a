"""Perceptual hashes of images, their Hamming distances, and band keys that bring near copies together.

**The hash** (:func:`perceptual_hash`, the DCT pHash): the image in grey (ITU-R 601 luma), reduced to 32x32
by area averaging, its 2-D DCT-II; the 63 lowest-frequency coefficients (the top-left 8x8 block without the
DC term) each give one bit, set when the coefficient is above their median. Bit ``k`` is coefficient
``k + 1`` of the block in row-major order; bit 63 is always 0. The hash describes the image's coarse
layout of light and dark, so it survives what copies go through:

- a brightness change scales every coefficient and an offset moves only the DC term: the bits do not move;
- a slight recolour (hue turned a few percent) changes the grey levels a little, and JPEG re-encoding
  (quality 75) disturbs mostly the coefficients near the median;
- a shift moves every coefficient's phase: on a 32x32 image one pixel is 3 % of the width and moves about 12
  bits, as far as two different scans of the same digit. :func:`shifted_hashes` gives the hashes of the
  image moved by one pixel each way; the smallest distance over them brings a shifted copy back to 0.

31 of the 63 bits are set (the median coefficient is not above itself; fewer when coefficients tie), so
distances are mostly even. On scikit-learn's digits drawn at 32x32 in colour
(``bench/near_duplicate_signatures.py``), the median distance of a JPEG copy is 0 and of a recoloured one
2; within :data:`NEAR` fall all JPEG copies, 99 % of recoloured ones, 47 % of copies moved by a pixel
(100 % over the shifted hashes), 1.1 % of pairs of different scans of the same digit and 0.003 % of pairs
of different digits. A blank image has all coefficients zero and hashes to 0.

**Band keys** (:func:`band_keys`): the 64 bits cut into ``bands`` chunks (16 bits each for 4 bands), each
tagged with its band index. By the pigeonhole principle two hashes within Hamming distance ``bands - 1``
agree on at least one whole chunk, so grouping by band key finds every such pair; pairs further apart are
found when their differing bits happen to fall in fewer chunks. The cost is the chunks' own collisions:
with uniform hashes, a record meets about ``bands * N / 2**(64 / bands)`` others among ``N``; real images
are less uniform (many dark backgrounds), so buckets are larger and :func:`hamming` confirms the pairs.
To find shifted copies, look each record's nine shifted hashes' keys up among the other records' plain
keys (on the digits: 100 % of shifted copies found, 97.5 % of copies shifted, recoloured and re-encoded,
at 32 candidates a row against 4.5 for plain keys alone).
"""

from __future__ import annotations

import numpy as np

from sanitizer.data.batch import mix64

SIDE = 32
"""The side the image is reduced to before the DCT."""
LOW = 8
"""The top-left ``LOW x LOW`` block of coefficients the bits come from (less the DC term)."""
NEAR = 10
"""The largest Hamming distance (of 63 bits) at which two images are taken for near copies."""
LUMA = np.array([0.299, 0.587, 0.114])
_BAND_TAG = 56
_MASK56 = np.uint64((1 << _BAND_TAG) - 1)
_PIXELS = 1 << 22  # grey pixels (float64) held at once: 32 MiB


def area_matrix(size: int, side: int = SIDE) -> np.ndarray:
    """``(side, size)`` weights: output cell ``i`` averages the input pixels it covers, by covered length."""
    edges = np.arange(side + 1) * (size / side)
    k = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(edges[1:, None], k + 1) - np.maximum(edges[:-1, None], k), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """``(n, <= 64)`` booleans -> ``(n,)`` uint64, column ``k`` as bit ``k``."""
    padded = np.zeros((len(bits), 64), dtype=bool)
    padded[:, :bits.shape[1]] = bits
    return np.packbits(padded, axis=1, bitorder="little").view("<u8")[:, 0].astype(np.uint64)


def perceptual_hash(pixels: np.ndarray) -> np.ndarray:
    """The 64-bit DCT pHash of each image: ``(n, H, W, 3)`` uint8 -> ``(n,)`` uint64.

    Vectorised over the batch, a few thousand images at a time (the grey copies weigh 8 bytes a pixel).
    """
    from scipy.fft import dctn

    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[3] != 3:
        raise ValueError(f"pixels must be (n, height, width, 3) RGB, got shape {pixels.shape}")
    n, height, width, _ = pixels.shape
    rows, cols = area_matrix(height), area_matrix(width).T
    out = np.zeros(n, dtype=np.uint64)
    step = max(1, _PIXELS // max(height * width, 1))
    for lo in range(0, n, step):
        grey = pixels[lo:lo + step].astype(np.float64) @ LUMA
        small = rows @ grey @ cols
        coefficients = dctn(small, type=2, axes=(1, 2), norm="ortho")[:, :LOW, :LOW]
        ac = coefficients.reshape(len(small), LOW * LOW)[:, 1:]
        median = np.median(ac, axis=1, keepdims=True)
        tolerance = 1e-9 * (np.abs(ac).max(axis=1, keepdims=True) + 1.0)  # a blank image: no bit
        out[lo:lo + step] = pack_bits(ac > median + tolerance)
    return out


def shifted_hashes(pixels: np.ndarray, shift: int = 1) -> np.ndarray:
    """``(n, 9)`` uint64: the pHash of each image moved by ``-shift, 0, +shift`` pixels down and across.

    Column ``3 * (dy + 1) + (dx + 1)`` (in units of ``shift``) holds the move ``(dy, dx)``; column 4 is the
    image itself; the uncovered edge repeats the nearest row or column. A copy moved by up to ``shift``
    pixels has one column within JPEG-like distance of its original's own hash, so band keys of all nine
    (multi-probe) find it and the smallest :func:`hamming` over the row confirms it.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 4:
        raise ValueError(f"pixels must be (n, height, width, 3) RGB, got shape {pixels.shape}")
    height, width = pixels.shape[1:3]
    out = np.empty((len(pixels), 9), dtype=np.uint64)
    rows, cols = np.arange(height), np.arange(width)
    for k, (dy, dx) in enumerate((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
        take_rows = np.clip(rows - dy * shift, 0, height - 1)
        take_cols = np.clip(cols - dx * shift, 0, width - 1)
        out[:, k] = perceptual_hash(pixels[:, take_rows][:, :, take_cols])
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between 64-bit hashes, element by element (broadcasting): ``int64``."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    as_bytes = np.ascontiguousarray(x).view(np.uint8).reshape(*x.shape, 8)
    return np.unpackbits(as_bytes, axis=-1).sum(axis=-1, dtype=np.int64)


def band_keys(hashes: np.ndarray, bands: int = 4) -> np.ndarray:
    """``(n, bands)`` uint64 keys: the ``i``-th of ``bands`` near-equal bit chunks, as ``i << 56 | chunk``.

    Chunks wider than 56 bits (``bands < 2``) are hashed to 56 bits first. Keys of different bands never
    collide; two hashes within Hamming distance ``bands - 1`` share at least one key.
    """
    if not 1 <= bands <= 64:
        raise ValueError(f"bands must be in [1, 64], got {bands}")
    hashes = np.asarray(hashes, dtype=np.uint64).reshape(-1)
    edges = np.linspace(0, 64, bands + 1).round().astype(int)
    keys = np.empty((len(hashes), bands), dtype=np.uint64)
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        width = int(hi - lo)
        chunk = (hashes >> np.uint64(lo)) & np.uint64((1 << width) - 1)
        if width > _BAND_TAG:
            chunk = mix64(chunk) & _MASK56
        keys[:, i] = (np.uint64(i) << np.uint64(_BAND_TAG)) | chunk
    return keys
