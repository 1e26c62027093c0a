"""Which files under an input are read, skipped or refused, and how a compressed one is opened.

The rules, in order, for each file found under an input folder or by a glob (its
path relative to the input root; ``sanitizer.io.discover`` applies them):

1. Skipped by convention, and listed: a name (file or folder) starting with
   ``.`` (hidden files, the ``.crc`` checksums Hadoop writes as ``.part-0.crc``);
   the folders ``_temporary``, ``_spark_metadata`` and ``_delta_log`` (a Spark
   job's unfinished attempts, streaming and Delta Lake logs); the files
   ``_SUCCESS``, ``_committed_*``, ``_started_*``, ``_metadata``,
   ``_common_metadata`` (job markers, Parquet summary files) and ``*.crc``.
   Any other name starting with ``_`` is an ordinary name: ``_2024.parquet``
   is data and is read (Spark itself would skip it; this tool does not drop a
   user's file for its name).
2. Ignored by the user's patterns (``--ignore``, config ``ignore``), and listed.
3. Read, by the extensions each format's reader declares (``sanitizer.io.readers``:
   ``.parquet``/``.pq``, ``.csv``, ``.jsonl``/``.ndjson``/``.json``,
   ``.tfrecord``/``.tfrecords``; CSV, JSON Lines and TFRecord optionally
   compressed: ``.gz``, ``.bz2``, ``.zst``, ``.xz``), or
   as the declared ``--format`` when its extension names no format.
4. Anything else is refused, naming the files and both ways out.
"""

import fnmatch
import lzma
import os
from dataclasses import dataclass

from sanitizer.io.fs import filesystems as _filesystems

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".xz": "xz", ".lzma": "xz"}
"""Compression suffixes an input may carry where its reader accepts them (CSV, JSON Lines, TFRecord); the file is
decompressed as it is read."""

UNREAD_COMPRESSIONS = (".zip", ".tar", ".tgz", ".7z", ".rar", ".lz4", ".snappy", ".deflate", ".br", ".z")
"""Archive and compression suffixes the readers do not unpack: such a file is refused, whatever --format says."""

SKIPPED_FOLDERS = {
    "_temporary": "a Spark/Hadoop job's work folder (unfinished task attempts)",
    "_spark_metadata": "Spark streaming metadata",
    "_delta_log": "a Delta Lake transaction log",
}
SKIPPED_FILES = {
    "_SUCCESS": "a Spark/Hadoop job marker",
    "_metadata": "a Parquet summary file (the shards' footers, again)",
    "_common_metadata": "a Parquet summary file (the shards' schema, again)",
}
SKIPPED_PREFIXES = {
    "_committed_": "a Spark/Databricks commit marker",
    "_started_": "a Spark/Databricks commit marker",
}
HIDDEN = "hidden: the name starts with '.'"


@dataclass(frozen=True)
class Skipped:
    """A file (or a whole folder: ``relpath`` ends in ``/``) under the input that the run did not read, and why."""

    uri: str
    relpath: str
    reason: str
    files: int | None = None  # for a folder: how many files it holds (None when it could not be listed)

    def to_dict(self) -> dict:
        out = {"uri": self.uri, "relpath": self.relpath, "reason": self.reason}
        if self.files is not None:
            out["files"] = self.files
        return out


def compression_of(path: str) -> str | None:
    """The codec a file's name says it is compressed with (``gzip``, ``bz2``, ``zstd``, ``xz``), or None."""
    return COMPRESSIONS.get(os.path.splitext(path)[1].lower())


def open_input(path: str):
    """A binary reader of one input file on any Beam filesystem, decompressed when its name says so
    (``.gz``, ``.bz2``, ``.zst``/``.zstd`` by pyarrow's codecs, ``.xz``/``.lzma`` by Python's ``lzma``)."""
    from apache_beam.io.filesystem import CompressionTypes

    raw = _filesystems().open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    codec = compression_of(path)
    if codec is None:
        return raw
    if codec == "xz":
        return _ClosingLZMAFile(raw)
    import pyarrow as pa

    return pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), codec)


class _ClosingLZMAFile(lzma.LZMAFile):
    """An LZMAFile that also closes the file it decompresses."""

    def __init__(self, raw):
        super().__init__(raw)
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def folder_reason(name: str) -> str | None:
    """Why convention skips a folder of this name (and all below it), or None (rule 1)."""
    if name.startswith("."):
        return HIDDEN
    return SKIPPED_FOLDERS.get(name)


def file_reason(name: str) -> str | None:
    """Why convention skips a file of this name, or None (rule 1)."""
    if name.startswith("."):
        return HIDDEN
    if name in SKIPPED_FILES:
        return SKIPPED_FILES[name]
    for prefix, reason in SKIPPED_PREFIXES.items():
        if name.startswith(prefix):
            return reason
    if name.lower().endswith(".crc"):
        return "a Hadoop checksum file (.crc)"
    return None


def conventional_skip(relpath: str) -> tuple[str, str] | None:
    """(reason, what is skipped: the file's relpath, or a folder's ending in ``/``) when convention skips
    the file at ``relpath`` (relative to the input root, ``/`` separators; module docstring, rule 1), else None."""
    parts = relpath.split("/")
    for i, part in enumerate(parts[:-1]):
        reason = folder_reason(part)
        if reason is not None:
            return reason, "/".join(parts[: i + 1]) + "/"
    reason = file_reason(parts[-1])
    return None if reason is None else (reason, relpath)


def ignored_by(relpath: str, patterns) -> str | None:
    """The first of the user's ignore ``patterns`` that matches the file, or None.

    A pattern (``fnmatch``: ``*``, ``?``, ``[abc]``; ``*`` also crosses ``/``) matches a file when it
    matches its name, its path relative to the input root, or one of the folders on that path.
    """
    parts = relpath.split("/")
    candidates = [parts[-1], relpath] + ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    for pattern in patterns or ():
        if any(fnmatch.fnmatchcase(c, pattern.rstrip("/")) for c in candidates):
            return pattern
    return None
