"""The report's image thumbnails: small PNGs of the original values, within one byte budget for the page.

:func:`thumbnail` makes a PNG of one original value (:func:`sanitizer.representations.images.thumbnail_png`:
RGB, aspect ratio kept, at most :data:`MAX_SIDE` pixels on the longer side, never enlarged; None when the
value cannot be read). :func:`fit` then keeps the page bounded: all thumbnails of a page share one largest
side, the largest of :data:`SIDES` (down to :data:`MIN_SIDE_ALL`) at which all of them are estimated to
stay within :data:`IMAGE_BUDGET_BYTES` (bytes taken as proportional to pixels), else at which the
suspects' own and the neighbours of the first page of rows do, else the largest at which the suspects'
own do; a grayscale image is stored as a one-channel PNG; identical thumbnails are stored once;
and past the budget the last ones in priority order (the neighbours of the lowest-ranked rows first) are
left out, the page saying so where they would be.
"""

from __future__ import annotations

import base64
import io
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from sanitizer.representations.images import encode_png, thumbnail_png

MAX_SIDE = 64
SIDES = (64, 48, 40, 32, 24, 16)  # thumbnail sides tried, largest first
MIN_SIDE_ALL = 32  # below this side, the suspects' own thumbnails come before their neighbours'
IMAGE_BUDGET_BYTES = 5_000_000  # PNG bytes of all thumbnails of one page (base64 in the page adds a third)


def thumbnail(value: Any, layout: str, base: str | None = None, shape: tuple | None = None) -> bytes | None:
    """A PNG of one original image value, at most :data:`MAX_SIDE` a side; None when it cannot be read."""
    try:
        return thumbnail_png(value, layout, MAX_SIDE, base, shape)
    except Exception:  # a value the pipeline read may still fail here; the page shows a placeholder, not a crash
        return None


def _size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    return struct.unpack(">II", png[16:24]) if len(png) >= 24 else (1, 1)


def _estimate(pngs: list[bytes], side: int) -> float:
    """Bytes of ``pngs`` shrunk to ``side``, taking bytes as proportional to pixels."""
    total = 0.0
    for png in pngs:
        longest = max(_size(png))
        total += len(png) * min(1.0, side / max(longest, 1)) ** 2
    return total


def _shrink(png: bytes, side: int) -> bytes:
    """``png`` at most ``side`` pixels a side, one channel when its pixels are gray."""
    image = Image.open(io.BytesIO(png))
    image.load()
    if max(image.size) > side:
        image.thumbnail((side, side), Image.Resampling.BILINEAR)
    pixels = np.asarray(image.convert("RGB"))
    if (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all():
        return encode_png(np.ascontiguousarray(pixels[..., 0]))
    return encode_png(pixels) if max(image.size) < max(_size(png)) else png


@dataclass
class Stored:
    """The distinct thumbnails (base64 PNG, in first-use order) and, per input, its index there or None."""

    pool: list[str] = field(default_factory=list)
    indices: list[int | None] = field(default_factory=list)
    bytes: int = 0


def fit(pngs: list[bytes | None], tiers: tuple[int, ...] = (), budget: int = IMAGE_BUDGET_BYTES
        ) -> tuple[Stored, int]:
    """``pngs`` (in priority order; None: unreadable) as the page stores them, and the side they were cut to.

    The side: the largest of SIDES down to MIN_SIDE_ALL at which all fit the budget, else at which the first
    ``tiers[0]``, then ``tiers[1]``, ... fit; else the largest at which the last tier fits (the suspects' own);
    what is left of the budget takes the rest in order."""
    def distinct(n: int) -> list[bytes]:
        return list(dict.fromkeys(p for p in pngs[:n] if p is not None))

    sizes = [len(pngs), *tiers]
    side = next((s for n in sizes for s in SIDES if s >= MIN_SIDE_ALL and _estimate(distinct(n), s) <= budget), None)
    side = side or next((s for s in SIDES if _estimate(distinct(sizes[-1]), s) <= budget), SIDES[-1])
    distinct = list(dict.fromkeys(p for p in pngs if p is not None))
    shrunk = {p: _shrink(p, side) for p in distinct}
    stored, index = Stored(), {}
    for png in pngs:
        small = None if png is None else shrunk[png]
        if small is not None and small not in index:
            if stored.bytes + len(small) > budget:
                small = None  # past the budget: left out
            else:
                index[small] = len(stored.pool)
                stored.pool.append(base64.b64encode(small).decode("ascii"))
                stored.bytes += len(small)
        stored.indices.append(None if small is None else index[small])
    return stored, side
