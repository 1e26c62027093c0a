"""Image and text columns in the torch stream: images as float32 tensors, texts as lists of strings.

The clean shards keep each image column as the user stored it (encoded bytes, Hugging Face's
``{bytes, path}`` struct, file paths, or a pixel list with a declared shape); the manifest records its
``layout``, the ``size`` the run decoded it to and, for paths, the folder relative paths were read from
(``base``). :class:`ImageColumn` decodes one batch of such values exactly as the run did
(:func:`sanitizer.representations.images.decode_images`: Pillow, 8-bit RGB, stretched to a square with
bilinear resampling) and gives ``float32 (b, 3, size, size)`` in ``[0, 1]``, channels first as
torchvision's ``ToTensor`` does. A clean record whose image cannot be read now (its file was moved or
deleted since the run) raises :class:`ImageError` naming the record id and the problem: an image is
never handed out as zeros.

Text columns are handed out as they are written: a list of ``str`` per batch (``None`` where a value is
missing); a tensor cannot hold text, so tokenising is the training job's (see :func:`texts`).

Imports neither Apache Beam nor torch: paths on a ``scheme://`` filesystem are read through
:mod:`pyarrow.fs`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from sanitizer.representations.image_sources import MAX_FILE_BYTES, Unreadable, has_scheme, one_line, read_file
from sanitizer.representations.images import decode_images
from sanitizer.representations.media_columns import IMAGE_SIZE
from sanitizer.training.shards import ManifestError, _read_bytes

DEFAULT_IMAGE_SIZE = IMAGE_SIZE
"""The image side the loader uses when neither the caller nor the manifest gives one (32)."""
_SHOWN = 5  # unreadable records named in an error


class ImageError(ManifestError):
    """A clean record's image cannot be read now, so its batch is not handed out."""


def image_columns_of(manifest: dict) -> list[str]:
    """The image columns the run judged (kind ``image`` with a ``layout``), in input order."""
    return [c["name"] for c in manifest.get("columns") or [] if c.get("kind") == "image" and c.get("layout")]


def text_columns_of(manifest: dict) -> list[str]:
    return [c["name"] for c in manifest.get("columns") or [] if c.get("kind") == "text"]


def _choose(manifest: dict, asked, available: list[str], what: str, argument: str) -> list[str]:
    if asked is True or asked == "all":
        return available
    if asked is None or asked is False:
        return []
    names = [asked] if isinstance(asked, str) else list(asked)
    kinds = {c["name"]: c.get("kind") for c in manifest.get("columns") or []}
    for c in names:
        if c not in available:
            raise ValueError(f"{argument} names {c!r}, which the manifest records as {kinds.get(c, 'no column')!r}; "
                             f"its {what} columns are {available}")
    return names


def choose_images(manifest: dict, asked) -> list[str]:
    """The torch stream's ``image_columns``: every judged image column (None, the default, or "all"), none
    (False or ``[]``), or the columns named."""
    return _choose(manifest, "all" if asked is None else asked, image_columns_of(manifest), "image",
                   "image_columns")


def choose_texts(manifest: dict, asked) -> list[str]:
    """The torch stream's ``text_columns``: none unless asked for ("all" or a list)."""
    return _choose(manifest, asked, text_columns_of(manifest), "text", "text_columns")


@dataclass(frozen=True)
class ImageColumn:
    """How one image column is decoded: ``layout`` and ``shape`` as the manifest records them, the square
    ``size`` to resize to, and ``base``, the folder relative paths resolve against."""

    name: str
    layout: str
    size: int
    base: str | None = None
    shape: tuple[int, int, int] | None = None

    def tensor(self, values: pa.Array | pa.ChunkedArray, ids: Sequence[Any]) -> np.ndarray:
        """float32 ``(n, 3, size, size)`` in [0, 1] of ``values`` (one per record of ``ids``);
        :class:`ImageError` naming every record whose image cannot be read."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        problems: dict[int, str] = {}
        if self.layout in ("path", "struct"):
            values, problems = self._encoded(values)
            pixels, decoded = decode_images(values, "bytes", self.size)
            decoded.update(problems)
            problems = decoded
        else:
            pixels, problems = decode_images(values, self.layout, self.size, shape=self.shape)
        if problems:
            raise self._error(problems, ids)
        out = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
        out /= 255.0
        return out

    def _encoded(self, values: pa.Array) -> tuple[pa.Array, dict[int, str]]:
        """The encoded image of every row (a file read from ``base`` when the row holds a path)."""
        encoded: list[bytes | None] = []
        problems: dict[int, str] = {}
        for i, value in enumerate(values.to_pylist()):
            path = value
            if isinstance(value, dict):
                if value.get("bytes"):
                    encoded.append(bytes(value["bytes"]))
                    continue
                path = value.get("path")
            try:
                encoded.append(self._read(path) if isinstance(path, str) and path.strip() else None)
            except Unreadable as exc:
                encoded.append(None)
                problems[i] = str(exc)
        return pa.array(encoded, pa.binary()), problems

    def _read(self, path: str) -> bytes:
        path, base = path.strip(), self.base
        if not has_scheme(path) and (not base or not has_scheme(base) or os.path.isabs(path)):
            return read_file(path, base)  # a local file: Python's own file functions
        where = path if has_scheme(path) else base.rstrip("/") + "/" + path
        try:
            data = _read_bytes(where)
        except Exception as exc:  # any filesystem's error names the path as the column holds it
            raise Unreadable(f"cannot read {path} ({one_line(exc)})") from None
        if len(data) > MAX_FILE_BYTES:
            raise Unreadable(f"cannot read {path} (larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB)")
        return data

    def _error(self, problems: dict[int, str], ids: Sequence[Any]) -> ImageError:
        rows = sorted(problems)
        named = "; ".join(f"record {ids[i]!r}: {problems[i]}" for i in rows[:_SHOWN])
        more = f" (and {len(rows) - _SHOWN} more in this batch)" if len(rows) > _SHOWN else ""
        where = f"; relative paths are read inside {self.base}" if self.layout in ("path", "struct") else ""
        return ImageError(
            f"image column {self.name!r}: {len(rows)} clean record(s) whose image cannot be read now, though the "
            f"run read it: {named}{more}{where}. The file was moved or deleted since the run: restore it, or pass "
            "image_root= (the folder relative paths resolve against); no image is handed out as zeros"
        )


def image_columns(data, names: Sequence[str], image_size: int | None, image_root: str | os.PathLike | None
                  ) -> tuple[ImageColumn, ...]:
    """An :class:`ImageColumn` per name, from ``data.manifest``: size ``image_size``, else the manifest's
    ``size``, else :data:`DEFAULT_IMAGE_SIZE`; relative paths inside ``image_root``, else the manifest's
    ``base``, else the folder of the run's first input as ``provenance.json`` records it."""
    if image_size is not None and (isinstance(image_size, bool) or int(image_size) != image_size
                                   or int(image_size) < 1):
        raise ValueError(f"image_size must be a whole number >= 1, got {image_size!r}")
    entries = {c["name"]: c for c in data.manifest.get("columns") or []}
    out = []
    for name in names:
        entry = entries[name]
        size = int(image_size) if image_size is not None else int(entry.get("size") or DEFAULT_IMAGE_SIZE)
        base = os.fspath(image_root) if image_root is not None else entry.get("base")
        if base is None and entry["layout"] in ("path", "struct"):
            base = _input_folder(data)
        shape = tuple(int(v) for v in entry["shape"]) if entry.get("shape") else None
        out.append(ImageColumn(name, entry["layout"], size, base, shape))
    return tuple(out)


def _input_folder(data) -> str | None:
    """The folder of the run's first input file (``provenance.json``'s ``inputs[0].uri``), or None."""
    from sanitizer.training.binding import check_provenance

    out = getattr(data, "out_dir", None)
    if out is None:
        return None
    inputs = check_provenance(out, data.manifest, getattr(data, "manifest_path", out)).get("inputs") or []
    uri = inputs[0].get("uri") if inputs and isinstance(inputs[0], dict) else None
    if not isinstance(uri, str) or not uri:
        return None
    folder = uri.replace("\\", "/").rsplit("/", 1)[0] if "/" in uri.replace("\\", "/") else "."
    return folder if has_scheme(folder) else os.path.abspath(folder)


def texts(values: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """One batch of a text column as Python strings, as written (``None`` where missing). Tokenise them in
    the training loop, e.g. ``tokenizer(texts, padding=True, truncation=True, return_tensors="pt")`` with a
    Hugging Face tokenizer, or your own vocabulary; the ids of the same batch (``ids=True``) tell which record
    each string is."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return [None if v is None else str(v) for v in values.to_pylist()]
