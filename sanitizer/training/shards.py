"""Shards of a published run and the file access the loader needs: verified bytes, local or ``scheme://``.

Shared by :mod:`sanitizer.training.manifest` (loading and verifying a manifest)
and :mod:`sanitizer.training.torch` (the torch stream); imports neither, and no
Apache Beam: ``scheme://`` URIs go through :mod:`pyarrow.fs`.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from sanitizer.errors import SanitizerError
from sanitizer.data.layout import CLEAN_DIR, MANIFEST

class ManifestError(SanitizerError):
    """A manifest or the clean shards it lists cannot be trusted; no data was handed out."""


# --------------------------------------------------------------------------- file access


def _is_uri(path: str) -> bool:
    return "://" in path


def _filesystem(uri: str):
    """(pyarrow filesystem, path inside it) for a ``scheme://`` URI."""
    from pyarrow import fs as pafs

    return pafs.FileSystem.from_uri(uri)


def _open(path: str):
    """A seekable binary reader for a local path or a URI pyarrow.fs can reach."""
    if not _is_uri(path):
        return open(path, "rb")
    filesystem, inner = _filesystem(path)
    return filesystem.open_input_file(inner)


def _read_bytes(path: str) -> bytes:
    """Every byte of a file (local or any Beam filesystem), read once."""
    chunks = []
    with _open(path) as fh:
        while True:
            chunk = fh.read(1 << 22)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _exists(path: str) -> bool:
    if not _is_uri(path):
        return os.path.isfile(path)
    from pyarrow import fs as pafs

    filesystem, inner = _filesystem(path)
    return filesystem.get_file_info(inner).type == pafs.FileType.File


def _list_uri(directory: str, wanted: Callable[[str], bool]) -> list[str]:
    """URIs of the files directly in ``directory`` whose name is ``wanted``, sorted; [] when there are none."""
    from pyarrow import fs as pafs

    try:
        filesystem, inner = _filesystem(directory)
        found = filesystem.get_file_info(pafs.FileSelector(inner.rstrip("/"), recursive=False,
                                                           allow_not_found=True))
    except Exception:  # an unreachable or unlistable folder lists nothing
        return []
    root = directory.rstrip("/")
    return sorted(f"{root}/{info.base_name}" for info in found
                  if info.type == pafs.FileType.File and wanted(info.base_name))


def _list_parquet(directory: str) -> list[str]:
    if not _is_uri(directory):
        return sorted(glob.glob(os.path.join(glob.escape(directory), "*.parquet")))
    return _list_uri(directory, lambda name: name.endswith(".parquet"))


def _join(root: str, relpath: str) -> str:
    return root.rstrip("/") + "/" + relpath if _is_uri(root) else os.path.join(root, *relpath.split("/"))


def _same_file(a: str, b: str) -> bool:
    if _is_uri(a) or _is_uri(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


# --------------------------------------------------------------------------- verified shards


@dataclass(frozen=True)
class Shard:
    """One clean shard as verified: where it is, what the manifest says, its row groups."""

    uri: str
    path: str  # relative to OUT, as in the manifest
    rows: int
    bytes: int
    sha256: str
    row_groups: tuple[int, ...]  # rows per row group, from the verified footer
    schema: pa.Schema | None = None  # the verified footer's Arrow schema


def _resolve(path: str | os.PathLike) -> tuple[str, str]:
    """(OUT folder, manifest path) for an OUT folder or a manifest file."""
    path = os.fspath(path)
    if path.endswith(".json"):
        manifest = path
        out = path.rsplit("/", 1)[0] if _is_uri(path) else (os.path.dirname(path) or ".")
    else:
        out = path.rstrip("/") or path
        manifest = _join(out, MANIFEST)
    return out, manifest


def _shard_relpath(entry: Any, index: int) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ManifestError(f"manifest clean.shards[{index}] has no 'path'; the manifest is damaged")
    rel = entry["path"]
    parts = rel.split("/")
    if (rel.startswith("/") or _is_uri(rel) or "\\" in rel or ".." in parts or len(parts) != 2
            or parts[0] != CLEAN_DIR or not rel.endswith(".parquet")):
        raise ManifestError(
            f"manifest clean.shards[{index}] path {rel!r} is not a Parquet file directly under {CLEAN_DIR}/; "
            "the manifest is damaged or was edited"
        )
    for key in ("rows", "bytes", "sha256"):
        if key not in entry:
            raise ManifestError(f"manifest entry for shard {rel!r} has no {key!r}; the manifest is damaged")
    return rel


def _verify_shard(out: str, entry: dict, rel: str) -> tuple[Shard | None, list[str]]:
    """Check one listed shard: its bytes (read once) against the manifest, its footer from those bytes."""
    uri = _join(out, rel)
    if not _exists(uri):
        return None, [f"shard {rel} is missing ({uri} does not exist)"]
    data = _read_bytes(uri)
    sha, size = hashlib.sha256(data).hexdigest(), len(data)
    if sha != entry["sha256"] or size != int(entry["bytes"]):
        return None, [
            f"shard {rel} has been modified since publication: sha256 {sha} ({size} bytes), "
            f"manifest says {entry['sha256']} ({entry['bytes']} bytes)"
        ]
    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
        meta = pf.metadata
        row_groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
        rows, schema = meta.num_rows, pf.schema_arrow
    except Exception as exc:
        return None, [f"shard {rel} is not a readable Parquet file ({type(exc).__name__}: {exc})"]
    if rows != int(entry["rows"]):
        return None, [f"shard {rel} holds {rows} rows but the manifest says {entry['rows']}"]
    return Shard(uri, rel, rows, size, sha, row_groups, schema), []


def _read_verified(shard: Shard) -> bytes:
    """A verified shard's bytes, read again and checked against the manifest: the bytes that get parsed.

    ``load_manifest`` checked the file as it was then; the file can be replaced before (or while) a
    training job reads it, so every read is verified on its own and nothing but these bytes is parsed.
    """
    try:
        data = _read_bytes(shard.uri)
    except (OSError, IOError) as exc:
        raise ManifestError(
            f"shard {shard.path} could not be read again after it was verified ({type(exc).__name__}: {exc}); "
            "it was moved or deleted since the manifest was written. Load the manifest again"
        ) from None
    sha = hashlib.sha256(data).hexdigest()
    if sha != shard.sha256 or len(data) != shard.bytes:
        raise ManifestError(
            f"shard {shard.path} has changed since the manifest was written (after load_manifest verified it): "
            f"sha256 {sha} ({len(data)} bytes), manifest says {shard.sha256} ({shard.bytes} bytes); "
            "none of its rows was handed out. Find out who replaced it, then re-run the sanitizer or load the "
            "manifest again"
        )
    return data


def _verified_parquet(shard: Shard) -> pq.ParquetFile:
    """A Parquet reader over the shard's verified in-memory bytes (see :func:`_read_verified`)."""
    return pq.ParquetFile(pa.BufferReader(_read_verified(shard)))


def _check_sha256_text(value: Any) -> str:
    """``expected_sha256`` as 64 lower-case hex digits; :class:`ManifestError` if it is not a sha256."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text is None or len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ManifestError(
            f"expected_sha256 {value!r} is not a sha256: pass the 64 hexadecimal digits of the checked "
            "manifest's sha256 (sha256sum OUT/manifest.json)"
        )
    return text


def _manifest_schema(manifest: dict, columns: Sequence[str] | None) -> pa.Schema:
    """An empty-table schema for a run with no clean rows (types as strings are not parsed back)."""
    names = [f["name"] for f in manifest.get("schema", []) if isinstance(f, dict) and "name" in f]
    if columns is not None:
        names = [n for n in names if n in columns]
    return pa.schema([pa.field(n, pa.null()) for n in names])

