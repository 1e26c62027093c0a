"""Where an image column's values come from: recognising encoded images and reading the stored bytes.

An image column holds each row's image in one of four layouts (``image_layout`` in
:mod:`sanitizer.representations.images` tells them apart):

* ``"bytes"``: the encoded file (PNG, JPEG, GIF, WebP or BMP) in a binary column;
* ``"struct"``: the Hugging Face ``datasets`` ``Image`` feature, a struct of ``bytes`` (binary, may be
  null) and ``path`` (string): the bytes when present, else the file at the path;
* ``"path"``: a string column of file names or URIs;
* ``"pixels"``: a list of numbers per row, the raw pixels (only when declared: otherwise a numeric vector
  is an embedding or a feature vector).

A path is read as written when it is absolute or a URI (``gs://bucket/a.png``), else relative to the
input's folder (``base``), through Beam's filesystems when that folder is a URI and as a local file
otherwise. A file larger than ``MAX_FILE_BYTES`` is not read. Every failure is a :class:`Unreadable`
whose message is a short line a reviewer reads in a quarantine reason.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pyarrow as pa

MAX_FILE_BYTES = 50 * 1024 * 1024
"""The largest image file read from a path (50 MiB); a larger one is a row problem, not a read."""
SAMPLE_VALUES = 20
"""How many non-null values ``image_layout`` looks at."""
EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)  # the DIB header sizes a BMP file can declare
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class Unreadable(Exception):
    """A row whose image cannot be read; ``str(exc)`` is the one-line problem."""


def is_image_bytes(data: bytes | None) -> bool:
    """Whether ``data`` starts with the signature of a PNG, JPEG, GIF, WebP or BMP file."""
    if not data:
        return False
    head = bytes(data[:16])
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    # "BM" alone is two bytes any blob may start with: the DIB header size behind it must be a real one
    return head[:2] == b"BM" and len(data) >= 18 and int.from_bytes(bytes(data[14:18]), "little") in _BMP_HEADER_SIZES


def has_image_extension(path: str | None) -> bool:
    """Whether ``path`` ends with .png .jpg .jpeg .gif .webp or .bmp (any case)."""
    return isinstance(path, str) and path.strip().lower().endswith(EXTENSIONS)


def first_values(column: pa.Array | pa.ChunkedArray, limit: int = SAMPLE_VALUES) -> list[Any]:
    """The first ``limit`` non-null values of ``column``, as Python values (reads no further)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    found: list[Any] = []
    for chunk in chunks:
        if len(found) >= limit:
            break
        found.extend(chunk.drop_null()[: limit - len(found)].to_pylist())
    return found


def has_scheme(path: str) -> bool:
    """Whether ``path`` is a URI (``gs://``, ``s3://``, ``file://``, ...)."""
    return bool(_SCHEME.match(path))


def resolve(path: str, base: str | None) -> str:
    """Where ``path`` is: as written when absolute or a URI (or with no ``base``), else inside ``base``."""
    path = path.strip()
    if not base or has_scheme(path) or os.path.isabs(path):
        return path
    if has_scheme(base):
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.join(base, path)
    return os.path.join(base, path)


def read_file(path: str, base: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the image file ``path`` (see ``resolve``), at most ``max_bytes`` of them.

    Raises :class:`Unreadable` ("cannot read PATH (reason)") when the file is missing, unreadable or larger
    than ``max_bytes``; PATH is the path as the column holds it."""
    where = resolve(path, base)
    try:
        if has_scheme(where):
            from apache_beam.io.filesystem import CompressionTypes
            from apache_beam.io.filesystems import FileSystems

            # as stored: Beam would otherwise decompress a name ending in .gz
            with FileSystems.open(where, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
                data = fh.read(max_bytes + 1)
        else:
            with open(where, "rb") as fh:
                if os.fstat(fh.fileno()).st_size > max_bytes:
                    raise Unreadable(f"cannot read {path} (larger than {max_bytes // (1024 * 1024)} MiB)")
                data = fh.read(max_bytes + 1)
    except Unreadable:
        raise
    except FileNotFoundError:
        raise Unreadable(f"cannot read {path} (no such file)") from None
    except IsADirectoryError:
        raise Unreadable(f"cannot read {path} (a folder, not a file)") from None
    except Exception as exc:  # any filesystem's error: a row problem, never a crashed worker
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
        raise Unreadable(f"cannot read {path} ({reason})") from None
    if len(data) > max_bytes:
        raise Unreadable(f"cannot read {path} (larger than {max_bytes // (1024 * 1024)} MiB)")
    return data


def value_bytes(value: Any, layout: str, base: str | None, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The encoded image of one ``"bytes"``, ``"struct"`` or ``"path"`` value (a Python value)."""
    if layout == "struct" and isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data:
            return bytes(data)
        if path:
            return read_file(path, base, max_bytes)
        raise Unreadable("missing image")
    if value is None or value == b"" or value == "":
        raise Unreadable("missing image")
    if layout == "path" and isinstance(value, str):
        return read_file(value, base, max_bytes)
    if layout != "path" and isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise Unreadable(f"not an image value (a {type(value).__name__})")


_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def one_line(exc: BaseException, limit: int = 160) -> str:
    """``exc``'s message on one line, without object addresses (the same in every run), cut to ``limit``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = _ADDRESS.sub("the data", lines[0]) if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
