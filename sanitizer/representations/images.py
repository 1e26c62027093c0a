"""Image columns as pixels: which layout a column holds, decoding a batch of it, and thumbnails.

``image_layout`` tells from an Arrow column's type and its first few values whether it holds images and
how (``"bytes"``, ``"struct"``, ``"path"``, ``"pixels"``: see :mod:`sanitizer.representations.image_sources`).
``decode_images`` turns a batch of such a column into the array the image representations read,
``(n, size, size, 3)`` ``uint8`` RGB, plus ``{row: problem}`` for the rows it could not read (their pixels
are zeros). ``thumbnail_png`` makes the small PNG of one value that the report shows.

How an image becomes ``size x size`` RGB:

* it is decoded by Pillow (PNG, JPEG, GIF, WebP and BMP only; a GIF's or WebP's first frame); grayscale,
  palette, CMYK and 16-bit images become 8-bit RGB, and transparent pixels are laid on white;
* it is stretched to ``size x size`` with bilinear resampling: the aspect ratio is not kept and nothing
  is cropped; a JPEG is first decoded at the smallest DCT scale (1/2, 1/4, 1/8) still at least ``size``
  on each side (Pillow's ``draft``), which is faster and needs less memory than a full decode;
* the EXIF orientation tag is ignored: a photo stored sideways stays sideways;
* an image whose header declares more than ``MAX_PIXELS`` pixels is refused before its pixels are
  decoded (a decompression bomb is a row problem, not a crashed worker or a flood of warnings; Pillow's
  bomb warning is turned into an error while a call runs, through Python's process-wide warning filters).

One image is decoded at a time, into a preallocated output, so a batch needs the output plus one
image's working memory. The same values give the same pixels and the same problems, in any batch.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from sanitizer.representations.image_sources import (
    MAX_FILE_BYTES, Unreadable, first_values, has_image_extension, is_image_bytes, one_line, value_bytes)

LAYOUTS = ("bytes", "struct", "path", "pixels")
MAX_PIXELS = 64_000_000
"""The most pixels (width x height) an image's header may declare; a larger one is not decoded."""
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
_ROWS_AT_ONCE = 256  # encoded values turned into Python objects at a time
_NOT_AN_IMAGE = "not a readable image (not a PNG, JPEG, GIF, WebP or BMP file)"


def image_layout(column: pa.Array | pa.ChunkedArray, declared: bool = False) -> str | None:
    """How ``column`` holds images, from its type and at most its first 20 non-null values; None: not images.

    * ``"bytes"``: binary values, at least half of them (and at least one) starting with a PNG, JPEG,
      GIF, WebP or BMP signature (a few corrupt files do not hide a column of images);
    * ``"struct"``: a struct with a binary ``bytes`` and a string ``path`` field (Hugging Face's
      ``Image`` feature) whose values are images by the same test (the bytes, else the path's extension);
    * ``"path"``: strings, every one of them ending with .png .jpg .jpeg .gif .webp or .bmp (any case);
    * ``"pixels"``: lists of numbers, only when ``declared`` (a numeric vector is otherwise an embedding
      or a feature vector).
    """
    kind = column.type
    if _is_binary(kind):
        return "bytes" if _mostly(is_image_bytes(v) for v in first_values(column)) else None
    if pa.types.is_struct(kind):
        names = {kind.field(i).name: kind.field(i).type for i in range(kind.num_fields)}
        if not (_is_binary(names.get("bytes")) and _is_string(names.get("path"))):
            return None
        values = [v for v in first_values(column) if v.get("bytes") or v.get("path")]
        return "struct" if _mostly(is_image_bytes(v["bytes"]) if v.get("bytes") else has_image_extension(v["path"])
                                   for v in values) else None
    if _is_string(kind):
        values = first_values(column)
        return "path" if values and all(has_image_extension(v) for v in values) else None
    if _is_list(kind) and (pa.types.is_integer(kind.value_type) or pa.types.is_floating(kind.value_type)):
        return "pixels" if declared else None
    return None


def decode_images(column: pa.Array | pa.ChunkedArray, layout: str, size: int, base: str | None = None,
                  shape: tuple[int, int, int] | None = None, *, max_pixels: int = MAX_PIXELS,
                  max_file_bytes: int = MAX_FILE_BYTES) -> tuple[np.ndarray, dict[int, str]]:
    """``(n, size, size, 3)`` uint8 RGB pixels of ``column``'s rows and ``{row: problem}`` for unread rows.

    ``layout`` is ``image_layout``'s answer. A relative path (``"path"``, or a ``"struct"`` without bytes)
    is read inside ``base``, the input's folder (a local folder or a URI such as ``gs://bucket/data``).
    ``"pixels"`` needs ``shape`` ``(H, W, C)``: each row holds ``H*W*C`` numbers, channels last, ``C`` in
    1 (gray), 3 (RGB), 4 (RGBA); float rows whose values are all <= 1.0 are read as [0, 1] and scaled by
    255, every other row is rounded and clipped to [0, 255]. A problem is one short line: "missing image",
    "not a readable image (...)", "cannot read PATH (...)", "image too large (...)", or a pixel list's
    wrong length. The problem rows' pixels are zeros.
    """
    _check(layout, size, shape)
    out = np.zeros((len(column), size, size, 3), dtype=np.uint8)
    problems: dict[int, str] = {}
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    with _bombs_are_errors():
        start = 0
        for chunk in chunks:
            if layout == "pixels":
                _decode_pixel_rows(chunk, shape, size, out, problems, start)
            else:
                for first in range(0, len(chunk), _ROWS_AT_ONCE):
                    for i, value in enumerate(chunk.slice(first, _ROWS_AT_ONCE).to_pylist(), start + first):
                        try:
                            data = value_bytes(value, layout, base, max_file_bytes)
                            out[i] = np.asarray(_fit(_open(data, size, max_pixels), size, stretch=True))
                        except Unreadable as exc:
                            problems[i] = str(exc)
            start += len(chunk)
    return out, problems


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of ``uint8`` pixels, ``(H, W, 3)`` RGB or ``(H, W)`` gray (the same bytes every time)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"encode_png needs uint8 pixels shaped (H, W, 3) or (H, W), got {pixels.dtype} "
                         f"{pixels.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail_png(value: Any, layout: str, size: int = 64, base: str | None = None,
                  shape: tuple[int, int, int] | None = None) -> bytes | None:
    """A PNG of one original value (a Python value or an Arrow scalar of an image column), at most
    ``size`` pixels on its longer side with the aspect ratio kept (a smaller image is not enlarged),
    for the report; None when the value cannot be read."""
    _check(layout, size, shape)
    if isinstance(value, pa.Scalar):
        value = value.as_py()
    try:
        with _bombs_are_errors():
            if layout == "pixels":
                image = Image.fromarray(_pixels(value, shape, None))
            else:
                image = _open(value_bytes(value, layout, base), size, MAX_PIXELS)
            return encode_png(np.asarray(_fit(image, size, stretch=False)))
    except Unreadable:
        return None


# --------------------------------------------------------------------------- one image


def _open(data: bytes, size: int, max_pixels: int) -> Image.Image:
    """``data`` opened by Pillow, its header checked against ``max_pixels``; pixels not decoded yet."""
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Unreadable(_too_large(exc, max_pixels)) from None
    except Image.UnidentifiedImageError:
        raise Unreadable(_NOT_AN_IMAGE) from None
    except Exception as exc:  # a broken header: whatever Pillow raises is this row's problem
        raise Unreadable(f"not a readable image ({one_line(exc)})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise Unreadable(f"image too large ({width}x{height} pixels, over {max_pixels / 1e6:g} megapixels)")
    if image.format in ("JPEG", "MPO"):  # MPO: a camera's JPEG with extra pictures
        image.draft(None, (size, size))
    return image


def _fit(image: Image.Image, size: int, stretch: bool) -> Image.Image:
    """``image`` as 8-bit RGB, stretched to ``size x size`` or shrunk within it; decoded here."""
    try:
        image.load()
        image = _eight_bit(image)
        if stretch and image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        elif not stretch:
            image.thumbnail((size, size), Image.Resampling.BILINEAR)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Unreadable(_too_large(exc, MAX_PIXELS)) from None
    except Exception as exc:  # truncated or corrupt data shows when the pixels are decoded
        raise Unreadable(f"not a readable image ({one_line(exc)})") from None
    if image.mode in ("LA", "RGBA"):  # transparent pixels on white, at the small size
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image.convert("RGB"), mask=image.getchannel("A"))
        return white
    return image.convert("RGB") if image.mode != "RGB" else image


def _eight_bit(image: Image.Image) -> Image.Image:
    """``image`` in a mode that resizes well and turns into RGB: L, LA, RGB or RGBA."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode.startswith("I"):  # 16-bit (or 32-bit integer) gray: keep the top 8 bits of the 16-bit range
        values = np.asarray(image).astype(np.int64)
        return Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8))
    if mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8))
    if mode in ("P", "PA"):
        return image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    return image.convert("RGB")  # 1, CMYK, YCbCr, LAB, HSV


def _too_large(exc: BaseException, max_pixels: int) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{found.group(1)} pixels, " if found else ""
    return f"image too large ({pixels}over {max_pixels / 1e6:g} megapixels)"


class _bombs_are_errors(warnings.catch_warnings):
    """Pillow's decompression-bomb warning raised as an error (a row problem), for the block it guards."""

    def __enter__(self):
        entered = super().__enter__()
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return entered


# --------------------------------------------------------------------------- pixel lists


def _decode_pixel_rows(chunk: pa.Array, shape, size: int, out: np.ndarray, problems: dict[int, str],
                       start: int) -> None:
    lengths = pc.list_value_length(chunk).fill_null(-1).to_numpy(zero_copy_only=False)
    values = chunk.flatten()  # the non-null rows' numbers, in order
    at = 0
    for i, length in enumerate(lengths):
        if length < 0:
            problems[start + i] = "missing image"
            continue
        row = values.slice(at, length)
        at += length
        try:
            out[start + i] = np.asarray(_fit(Image.fromarray(_pixels(row, shape, length)), size, stretch=True))
        except Unreadable as exc:
            problems[start + i] = str(exc)


def _pixels(row: Any, shape: tuple[int, int, int], length: int | None) -> np.ndarray:
    """One row's numbers as ``(H, W)`` or ``(H, W, C)`` uint8 (see ``decode_images``)."""
    if row is None:
        raise Unreadable("missing image")
    if isinstance(row, pa.Array):
        floating = pa.types.is_floating(row.type)
        numbers = row.to_numpy(zero_copy_only=False)
    else:
        numbers = np.asarray(row)
        floating = numbers.dtype.kind == "f"
        length = numbers.size
    height, width, channels = shape
    if length != height * width * channels:
        raise Unreadable(f"expected {height * width * channels} pixel values ({height}x{width}x{channels}), "
                         f"got {length}")
    if numbers.dtype.kind not in "iuf" or (numbers.dtype.kind == "f" and not np.isfinite(numbers).all()):
        raise Unreadable("pixel values must be numbers (found null, NaN or infinity)")
    if numbers.dtype != np.uint8:
        numbers = numbers.astype(np.float64)
        if floating and numbers.max(initial=0.0) <= 1.0:
            numbers = numbers * 255.0
        numbers = np.clip(np.rint(numbers), 0, 255).astype(np.uint8)
    return numbers.reshape((height, width) if channels == 1 else (height, width, channels))


def _check(layout: str, size: int, shape) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if layout == "pixels":
        if (shape is None or len(shape) != 3 or any(int(d) < 1 for d in shape) or shape[2] not in (1, 3, 4)):
            raise ValueError(f"the pixels layout needs shape=(H, W, C) with C in 1, 3 or 4, got {shape!r}")


def _mostly(hits) -> bool:
    hits = list(hits)
    return bool(hits) and 2 * sum(hits) >= len(hits)


def _is_binary(kind) -> bool:
    return kind is not None and (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
                                 or pa.types.is_binary_view(kind))


def _is_string(kind) -> bool:
    return kind is not None and (pa.types.is_string(kind) or pa.types.is_large_string(kind)
                                 or pa.types.is_string_view(kind))


def _is_list(kind) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
