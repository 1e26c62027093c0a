"""Paths on any filesystem Beam knows: glob characters, literal matching, file identity and stat,
and the small file operations (read, write atomically, list, Parquet footers) the review commands use.

Beam's ``FileSystems.match`` (and its file sinks, which match ``prefix*`` when
they finalise shards) read ``[``, ``*`` and ``?`` as glob characters in every
path. A literal path handed to them must be escaped first, or ``run[1]`` means
``run1``. ``escape_glob`` writes each of them as a one-character class
(``[[]``, ``[*]``, ``[?]``), which both Beam's pattern translation and Python's
``fnmatch``/``glob`` read as the literal character.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re

from sanitizer.errors import ConfigError

_GLOB_RE = re.compile(r"[\[*?]")


def filesystems():
    """Beam's FileSystems (imported on first use: local-only callers need no Beam)."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


_filesystems = filesystems


def sha256_of(path: str, opener=None) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file on any Beam filesystem (or through ``opener``), read in 4 MiB chunks.

    The bytes as stored: a ``.gz`` file is hashed compressed (Beam would otherwise decompress it by suffix)."""
    from apache_beam.io.filesystem import CompressionTypes

    digest = hashlib.sha256()
    size = 0
    raw = (lambda p: filesystems().open(p, compression_type=CompressionTypes.UNCOMPRESSED))
    with (opener or raw)(path) as fh:
        while True:
            chunk = fh.read(1 << 22)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def is_remote(path: str) -> bool:
    """True for ``scheme://`` paths (gs://, s3://...), which only Beam's filesystems can reach."""
    return "://" in path


def has_glob(path: str) -> bool:
    """Whether Beam would read ``path`` as a pattern rather than a name."""
    return bool(_GLOB_RE.search(path))


def glob_chars(path: str) -> list[str]:
    """The glob characters in ``path``, each once, in the order they appear."""
    return list(dict.fromkeys(_GLOB_RE.findall(path)))


def escape_glob(path: str) -> str:
    """``path`` as a pattern that matches exactly ``path`` (``run[1]`` -> ``run[[]1]``)."""
    return _GLOB_RE.sub(lambda m: f"[{m.group(0)}]", path)


def check_output_path(out: str) -> None:
    """Refuse an output folder whose path holds glob characters.

    Beam's file sinks use the shard prefix both as a name and, when they
    finalise, as a pattern (``OUT/clean/part-*-of-N.parquet``, deleted if it
    matches "old" shards), with no way to escape it; so ``runs/run[1]`` would
    delete the published shards of a sibling ``runs/run1``. Escaping cannot help
    (the same string names the files), so such a path is refused up front.
    """
    chars = glob_chars(out)
    if chars:
        raise ConfigError(
            f"output {out!r} holds glob character(s) {' '.join(chars)}; Beam's file sinks read the output path "
            "as a pattern when they finalise shards, so the run could overwrite or delete files of other folders "
            "(run[1] matches run1). Choose an --output without '[', '*' or '?'"
        )


def static_prefix(pattern: str) -> str:
    """The part of a glob before its first glob character (what the filesystem lists)."""
    match = _GLOB_RE.search(pattern)
    return pattern if match is None else pattern[: match.start()]


def pattern_regex(pattern: str) -> re.Pattern:
    """The regular expression Beam matches ``pattern`` with (``*`` stays within a folder, ``**`` crosses them)."""
    from apache_beam.io.filesystem import FileSystem

    return re.compile(FileSystem.translate_pattern(pattern))


def normalise(path: str) -> str:
    """A comparable form of ``path``: the real absolute path locally (symlinks resolved), else without a trailing /."""
    if is_remote(path):
        return path.rstrip("/")
    return os.path.realpath(path)


def is_inside(path: str, folder: str) -> bool:
    """Whether normalised ``path`` is ``folder`` or lies below it (whole path components only)."""
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder.endswith("/") else folder + "/")


def stat(path: str) -> tuple[int, float | None]:
    """(size in bytes, modification time in seconds) of one file, read literally (no glob).

    Local files: ``os.stat`` (symlinks followed). Elsewhere: the metadata Beam's
    filesystem reports (``size_in_bytes``, ``last_updated_in_seconds``; on GCS
    the object's update time, which changes with every new generation).
    """
    if not is_remote(path):
        st = os.stat(path)
        return int(st.st_size), float(st.st_mtime)
    meta = _filesystems().get_filesystem(path).metadata(path)
    updated = getattr(meta, "last_updated_in_seconds", None)
    return int(meta.size_in_bytes), (None if updated is None else float(updated))


# --------------------------------------------------------------------------- files (local or any Beam filesystem)
#
# Local paths go through the os module; ``scheme://`` paths through Beam's FileSystems, imported only when
# such a path is used (so importing this module imports no Beam).


def join(root: str, rel: str) -> str:
    """``root`` + "/" + ``rel`` (a relative path with / separators), for local paths and URIs alike."""
    return root.rstrip("/") + "/" + rel


def exists(path: str) -> bool:
    return _filesystems().exists(path) if is_remote(path) else os.path.exists(path)


def open_read(path: str):
    """A binary reader (local file, or Beam's reader for a URI)."""
    return _filesystems().open(path) if is_remote(path) else open(path, "rb")


def create(path: str):
    """A binary writer of a new object at a URI (Beam filesystems only; local files are written with open)."""
    return _filesystems().create(path)


def read_bytes(path: str) -> bytes:
    with open_read(path) as fh:
        return fh.read()


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole, under a temporary name no one else uses.

    Locally the data goes to ``.<name>.<random>.tmp`` beside ``path``, created
    with ``O_EXCL | O_NOFOLLOW`` (so a file or symbolic link already there is
    never written through), synced, then renamed over ``path``; a symbolic link
    at ``path`` itself is replaced, never its target. On a Beam filesystem
    ``path.<random>.tmp`` is written, then renamed to ``path``.
    """
    import uuid

    token = uuid.uuid4().hex
    if is_remote(path):
        fs = _filesystems()
        tmp = f"{path}.{token}.tmp"
        with fs.create(tmp) as fh:
            fh.write(data)
        if fs.exists(path):
            fs.delete([path])
        fs.rename([tmp], [path])
        return
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{token}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def delete(path: str) -> None:
    """Remove one file if it exists."""
    if is_remote(path):
        if _filesystems().exists(path):
            _filesystems().delete([path])
    elif os.path.exists(path):
        os.remove(path)


def rename(src: str, dst: str) -> None:
    if is_remote(src):
        _filesystems().rename([src], [dst])
    else:
        os.replace(src, dst)


def list_files(pattern: str) -> list[str]:
    """Files matching a glob ``pattern`` (local, or any Beam filesystem), sorted by name."""
    if not is_remote(pattern):
        return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    try:
        found = _filesystems().match([pattern])[0].metadata_list
    except Exception:  # some filesystems raise when a pattern matches nothing
        return []
    return sorted(m.path for m in found)


def is_dir(path: str) -> bool:
    if is_remote(path):  # object stores have no folders: a prefix with objects under it
        return bool(list_files(path.rstrip("/") + "/*"))
    return os.path.isdir(path)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_parquet(path: str, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    # ParquetFile.read rather than pq.read_table: read_table's dataset path can leave a thread behind that
    # aborts the interpreter at exit ("terminate called without an active exception", pyarrow 25, under load).
    if is_remote(path):
        with open_read(path) as fh:
            return pq.ParquetFile(fh).read(columns=columns)
    return pq.ParquetFile(path).read(columns=columns)


def parquet_schema(path: str):
    """The Arrow schema of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    if is_remote(path):
        with open_read(path) as fh:
            return pq.read_schema(fh)
    return pq.read_schema(path)


def parquet_names(path: str) -> list[str]:
    return parquet_schema(path).names


def parquet_rows(path: str) -> int:
    import pyarrow.parquet as pq

    if is_remote(path):
        with open_read(path) as fh:
            return pq.read_metadata(fh).num_rows
    return pq.read_metadata(path).num_rows
