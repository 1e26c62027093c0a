"""The verified clean data of a published run: :func:`load_manifest`, :class:`CleanData`, :class:`ManifestError`.

:func:`load_manifest` is the only door: it reads ``manifest.json`` and checks every
clean shard it lists against the sha256, size and row count recorded at publication,
and that ``clean/`` holds no Parquet file the manifest does not list. Anything off
(a modified shard, a missing one, an unlisted one, a row count that does not match
the file) raises :class:`ManifestError` naming the shard, before any row is handed
out. ``expected_sha256`` pins the manifest itself: a scheduler that checked a run (a
quarantine-rate circuit breaker) passes the sha256 of the manifest it checked, and a
manifest whose bytes differ is refused; the manifest is parsed from the bytes that were
hashed.

Verification covers the bytes that are parsed, not just the file as it was at load time:
every later read (``to_table``, ``to_pandas``, each DataLoader worker of ``torch_dataset``)
reads a shard's bytes once into memory, checks their sha256 and size against the manifest
again and parses Parquet from those same bytes. A shard swapped after ``load_manifest``
raises :class:`ManifestError` naming it, and none of its rows is handed out. Shards are
read one at a time, so peak memory is about one shard (plus what ``to_table`` returns).

Local paths are read with Python's own file functions; ``scheme://`` URIs (``gs://``, ``s3://``,
``hdfs://``...) through :mod:`pyarrow.fs` (``FileSystem.from_uri``), so loading a manifest imports no
Apache Beam: a training image needs pyarrow, numpy and (for ``to_pandas``) pandas, nothing else. The
torch stream over this data is :mod:`sanitizer.training.torch` (imported on first use).
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from sanitizer.errors import SanitizerError
from sanitizer.layout import CLEAN_DIR, MANIFEST

SUPPORTED_MANIFEST_VERSIONS = (1,)


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


def _read_manifest(manifest_path: str, expected_sha256: str | None) -> tuple[dict, str]:
    """(parsed manifest, sha256 of its bytes): one read, hashed, checked, then parsed from the same bytes."""
    expected = _check_sha256_text(expected_sha256) if expected_sha256 is not None else None
    raw = _read_bytes(manifest_path)
    actual = hashlib.sha256(raw).hexdigest()
    if expected is not None and actual != expected:
        raise ManifestError(
            f"manifest {manifest_path} is not the manifest that was checked: expected sha256 {expected}, "
            f"but its bytes' sha256 is {actual}. It changed after it was checked (edited, or replaced by "
            "another run); check the new run again before training on it"
        )
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest {manifest_path} is not valid JSON ({exc})") from None
    return manifest, actual


def load_manifest(path: str | os.PathLike, expected_sha256: str | None = None) -> "CleanData":
    """Read a run's manifest and verify every clean shard; :class:`ManifestError` if anything is off.

    ``path`` is the run's output folder or its ``manifest.json`` (local, or any Beam filesystem URI).
    ``expected_sha256``: the sha256 (hex) of the manifest a check approved; a manifest whose bytes
    hash differently is refused, naming both hashes.
    Checks, for every shard the manifest lists under ``clean``: it exists, its sha256 and size match,
    its Parquet footer holds the recorded row count; the shard counts add up to ``clean.rows``; and
    ``OUT/clean/`` holds no ``.parquet`` file the manifest does not list.
    """
    out, manifest_path = _resolve(path)
    if not _exists(manifest_path):
        raise ManifestError(
            f"no manifest at {manifest_path}: the run did not publish (a run that fails writes none), "
            "or the path is wrong"
        )
    manifest, manifest_sha256 = _read_manifest(manifest_path, expected_sha256)
    if not isinstance(manifest, dict):
        raise ManifestError(f"manifest {manifest_path} is not a JSON object")
    version = manifest.get("manifest_version")
    if version not in SUPPORTED_MANIFEST_VERSIONS:
        raise ManifestError(
            f"manifest {manifest_path} has manifest_version {version!r}; this sanitizer reads "
            f"{', '.join(map(str, SUPPORTED_MANIFEST_VERSIONS))} (upgrade sanitizer to read newer runs)"
        )
    if manifest.get("format", "parquet") != "parquet":
        raise ManifestError(f"manifest {manifest_path} lists {manifest.get('format')!r} shards; only parquet is read")
    clean = manifest.get("clean")
    if not isinstance(clean, dict) or not isinstance(clean.get("shards"), list):
        raise ManifestError(f"manifest {manifest_path} has no clean.shards list; the manifest is damaged")

    problems: list[str] = []
    shards: list[Shard] = []
    listed: list[str] = []
    for i, entry in enumerate(clean["shards"]):
        rel = _shard_relpath(entry, i)
        if rel in listed:
            raise ManifestError(f"manifest lists shard {rel} twice; the manifest is damaged")
        listed.append(rel)
        shard, shard_problems = _verify_shard(out, entry, rel)
        problems += shard_problems
        if shard is not None:
            shards.append(shard)
    listed_uris = [_join(out, rel) for rel in listed]
    unlisted = [f for f in _list_parquet(_join(out, CLEAN_DIR)) if not any(_same_file(f, u) for u in listed_uris)]
    if unlisted:
        # Shards of the folder's other publications (``sanitize publish`` keeps the manifest it replaces as
        # manifest-<run id>.json, and its released shard stays) are history, not additions.
        history = [_join(out, rel) for rel in _other_manifest_shards(out, manifest_path)]
        for found in unlisted:
            if not any(_same_file(found, uri) for uri in history):
                name = found.replace("\\", "/").rsplit("/", 1)[-1]
                problems.append(
                    f"{CLEAN_DIR}/{name} is not listed in the manifest (a file added after publication)"
                )
    total = sum(int(e["rows"]) for e in clean["shards"])
    if "rows" in clean and int(clean["rows"]) != total:
        problems.append(f"manifest clean.rows is {clean['rows']} but its shards add up to {total}")
    if problems:
        raise ManifestError(
            f"the clean data of run {manifest.get('run_id', '?')} at {out} failed verification, "
            "so none of it is handed out: " + "; ".join(problems)
        )
    return CleanData(manifest=manifest, out_dir=out, manifest_path=manifest_path, shards=tuple(shards),
                     manifest_sha256=manifest_sha256)


def _other_manifest_shards(out: str, manifest_path: str) -> list[str]:
    """Clean shard paths listed by the folder's other manifests (manifest.json, manifest-*.json)."""
    if _is_uri(out):
        found = _list_uri(out, lambda name: fnmatch.fnmatchcase(name, "manifest*.json"))
    else:
        found = glob.glob(os.path.join(glob.escape(out), "manifest*.json"))
    paths: list[str] = []
    for path in found:
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        if _same_file(path, manifest_path) or not (name == MANIFEST or name.startswith("manifest-")):
            continue
        try:
            with _open(path) as fh:
                other = json.loads(fh.read().decode("utf-8"))
            paths += [s["path"] for s in other["clean"]["shards"] if isinstance(s.get("path"), str)]
        except Exception:
            continue  # an unreadable manifest vouches for nothing
    return paths


# --------------------------------------------------------------------------- the verified data


@dataclass(frozen=True, eq=False)
class CleanData:
    """The verified clean shards of one run. Build it with :func:`load_manifest`."""

    manifest: dict
    out_dir: str
    manifest_path: str
    shards: tuple[Shard, ...]
    manifest_sha256: str | None = None  # of the manifest's bytes, as read and parsed

    @property
    def run_id(self) -> str | None:
        return self.manifest.get("run_id")

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def uris(self) -> list[str]:
        return [s.uri for s in self.shards]

    @property
    def label_column(self) -> str | None:
        return self.manifest.get("label_column")

    @property
    def id_column(self) -> str | None:
        return self.manifest.get("id_column")

    @property
    def feature_columns(self) -> list[str]:
        return list(self.manifest.get("feature_columns") or [])

    def __len__(self) -> int:
        return self.rows

    def to_table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Every clean row as one Arrow table (``columns`` to read only some).

        Each shard is read once into memory, verified against the manifest and parsed from those
        bytes; a shard changed since :func:`load_manifest` raises :class:`ManifestError`.
        """
        columns = list(columns) if columns is not None else None
        tables = []
        for shard in self.shards:
            tables.append(pq.read_table(pa.BufferReader(_read_verified(shard)), columns=columns))
        if not tables:
            return _manifest_schema(self.manifest, columns).empty_table()
        return pa.concat_tables(tables)

    def to_pandas(self, columns: Sequence[str] | None = None):
        """Every clean row as a pandas DataFrame (``columns`` to read only some)."""
        return self.to_table(columns).to_pandas()

    def torch_dataset(self, features: Sequence[str] | str | None = None, label: str | None = None,
                      batch_size: int = 1024, label_map: dict | None = None, ids: bool = False):
        """A :class:`torch.utils.data.IterableDataset` of ``(features, labels)`` batches (see :class:`TorchBatches`)."""
        from sanitizer.training.torch import make_torch_dataset  # on first use: this module needs no torch

        return make_torch_dataset(self, features, label, batch_size, label_map, ids)


def _manifest_schema(manifest: dict, columns: Sequence[str] | None) -> pa.Schema:
    """An empty-table schema for a run with no clean rows (types as strings are not parsed back)."""
    names = [f["name"] for f in manifest.get("schema", []) if isinstance(f, dict) and "name" in f]
    if columns is not None:
        names = [n for n in names if n in columns]
    return pa.schema([pa.field(n, pa.null()) for n in names])

