"""Input formats: one module per format (``parquet``, ``csv``, ``jsonl``, ``tfrecord``) behind one registry. May import errors, data/ and io/ (fs, input_rules); never beam/, detectors/ or review/.

Everything that names the input formats reads this registry: the ``--format`` choices of ``sanitize
run`` and ``sanitize profile``, the ``format`` config key, which files discovery reads (by
extension) and what its refusals name, and how each file is read and cut into splits.

Adding a format is one module with a :class:`~sanitizer.io.readers.base.Reader` subclass, plus
its line in ``BUILT_IN`` below (or a :func:`register_reader` call in code that runs before the
pipeline is built and on every worker)::

    class TsvReader(Reader):
        name, title, extensions, compressed = "tsv", "TSV", (".tsv",), True

        def read(self, fh, f, batch_rows, split, columns):
            import pyarrow.csv as pcsv
            return rebatch(pcsv.open_csv(fh, parse_options=pcsv.ParseOptions(delimiter="\\t")),
                           batch_rows, columns)

    register_reader(TsvReader())
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sanitizer.errors import InputError
from sanitizer.io.input_rules import COMPRESSIONS, UNREAD_COMPRESSIONS
from sanitizer.io.readers.base import Reader
from sanitizer.io.readers.csv import CsvReader
from sanitizer.io.readers.jsonl import JsonLinesReader
from sanitizer.io.readers.parquet import ParquetReader
from sanitizer.io.readers.tfrecord import TFRecordReader

AUTO = "auto"
"""The ``--format`` value that reads each file by its extension (the default)."""

_READERS: dict[str, Reader] = {}
_BY_EXTENSION: dict[str, str] = {}


def register_reader(reader: Reader) -> Reader:
    """Make ``reader`` an input format: its name a ``--format`` value, its extensions read as it.

    A name or extension another reader holds, or an extension that is a compression suffix,
    is refused (a file must have one reading)."""
    name = reader.name
    if not name or name == AUTO or name in _READERS:
        raise ValueError(f"an input format named {name!r} is already registered (or reserved)")
    for ext in reader.extensions:
        if ext != ext.lower() or not ext.startswith("."):
            raise ValueError(f"reader {name!r}: extension {ext!r} must be lower case and start with '.'")
        if ext in _BY_EXTENSION or ext in COMPRESSIONS or ext in UNREAD_COMPRESSIONS:
            raise ValueError(f"reader {name!r}: extension {ext!r} already has a meaning "
                              f"({_BY_EXTENSION.get(ext, 'a compression suffix')})")
    _READERS[name] = reader
    _BY_EXTENSION.update((ext, name) for ext in reader.extensions)
    return reader


def unregister_reader(name: str) -> Reader:
    """Remove the input format ``name`` (and its extensions); the reader that held it."""
    reader = _READERS.pop(name)
    for ext in reader.extensions:
        _BY_EXTENSION.pop(ext, None)
    return reader


def reader_for(name: str) -> Reader:
    """The reader of the format ``name`` (an ``InputFile.format``)."""
    try:
        return _READERS[name]
    except KeyError:
        raise InputError(f"no reader for input format {name!r}; formats: {', '.join(_READERS)}") from None


def readers() -> tuple[Reader, ...]:
    """Every registered reader, in registration order."""
    return tuple(_READERS.values())


def format_names() -> tuple[str, ...]:
    return tuple(_READERS)


class _FormatChoices(Sequence):
    """The values ``format`` / ``--format`` takes: ``auto``, then every registered format, read from the
    registry whenever asked (argparse and the config check hold this, not a copy)."""

    def _values(self) -> tuple[str, ...]:
        return (AUTO, *_READERS)

    def __getitem__(self, index):
        return self._values()[index]

    def __len__(self) -> int:
        return len(self._values())

    def __repr__(self) -> str:
        return repr(self._values())


FORMAT_CHOICES = _FormatChoices()


def _either(items: list[str]) -> str:
    """``a, b or c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def format_titles() -> str:
    """``Parquet, CSV, JSON Lines or TFRecord``: the formats as help texts name them."""
    return _either([r.title for r in _READERS.values()])


def extensions_named() -> str:
    """``.parquet, .csv, .jsonl or .tfrecord``: each format by its first extension."""
    return _either([r.extensions[0] for r in _READERS.values()])


def format_of(path: str, declared: str) -> tuple[str | None, str | None]:
    """(format, None) for a file the run reads; (None, why) for one it cannot read as data.

    By the file's extension (under a compression suffix its reader accepts), or as the ``declared``
    format when its extension names none; archives and compressions no reader unpacks are refused."""
    base, ext = os.path.splitext(path)
    ext = ext.lower()
    if ext in UNREAD_COMPRESSIONS:
        return None, f"an archive or {ext} compression the readers do not unpack"
    codec = COMPRESSIONS.get(ext)
    if codec is not None:
        ext = os.path.splitext(base)[1].lower()
    named = _BY_EXTENSION.get(ext)
    fmt = named if declared == AUTO else declared
    if declared != AUTO and named is not None and named != declared:
        return None, f"its extension says {named}, but --format {declared} was given"
    if fmt is None:
        return None, "no known format"
    reader = reader_for(fmt)
    if codec is not None and not reader.compressed:
        return None, f"compressed {reader.title} ({reader.uncompressed_only or 'store it uncompressed'})"
    return fmt, None


BUILT_IN = (ParquetReader(), CsvReader(), JsonLinesReader(), TFRecordReader())
"""The formats every run knows, one line each."""

for _reader in BUILT_IN:
    register_reader(_reader)
