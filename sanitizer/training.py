"""What a training job imports: the clean shards of a published run, verified.

    from sanitizer.training import load_manifest

    data = load_manifest("out/")              # or out/manifest.json, gs://bucket/out, ...
    data = load_manifest("out/", expected_sha256=checked)   # only the manifest whose bytes were checked
    frame = data.to_pandas()                  # every clean row, as a DataFrame
    ds = data.torch_dataset(batch_size=256)   # (features float32 [b, d], labels int64 [b]) batches
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=4)

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

Paths go through Beam's filesystems (imported only for ``scheme://`` URIs), so
``gs://`` and ``s3://`` outputs load the same way as local folders.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sanitizer.errors import SanitizerError

MANIFEST = "manifest.json"
CLEAN_DIR = "clean"
SUPPORTED_MANIFEST_VERSIONS = (1,)


class ManifestError(SanitizerError):
    """A manifest or the clean shards it lists cannot be trusted; no data was handed out."""


# --------------------------------------------------------------------------- file access


def _is_uri(path: str) -> bool:
    return "://" in path


def _beam_fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _open(path: str):
    """A seekable binary reader for a local path or any Beam filesystem URI."""
    if not _is_uri(path):
        return open(path, "rb")
    from apache_beam.io.filesystem import CompressionTypes

    return _beam_fs().open(path, mime_type="application/octet-stream",
                           compression_type=CompressionTypes.UNCOMPRESSED)


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
    return os.path.isfile(path) if not _is_uri(path) else _beam_fs().exists(path)


def _list_parquet(directory: str) -> list[str]:
    if not _is_uri(directory):
        return sorted(glob.glob(os.path.join(glob.escape(directory), "*.parquet")))
    try:
        results = _beam_fs().match([directory.rstrip("/") + "/*.parquet"])
    except Exception:  # Beam raises when a pattern matches nothing on some filesystems
        return []
    return sorted(m.path for m in results[0].metadata_list)


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
        try:
            found = [m.path for m in _beam_fs().match([out.rstrip("/") + "/manifest*.json"])[0].metadata_list]
        except Exception:
            found = []
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
        return make_torch_dataset(self, features, label, batch_size, label_map, ids)


def _manifest_schema(manifest: dict, columns: Sequence[str] | None) -> pa.Schema:
    """An empty-table schema for a run with no clean rows (types as strings are not parsed back)."""
    names = [f["name"] for f in manifest.get("schema", []) if isinstance(f, dict) and "name" in f]
    if columns is not None:
        names = [n for n in names if n in columns]
    return pa.schema([pa.field(n, pa.null()) for n in names])


# --------------------------------------------------------------------------- features and labels


def _feature_width(field: pa.Field, shard: Shard | None) -> int:
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_fixed_size_list(t):
        return t.list_size
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        # A variable-length list column: every clean row has the same length; read it off the first row.
        if shard is None:
            raise ManifestError(f"feature column {field.name!r} is a variable-length list and there are no rows")
        col = _verified_parquet(shard).read_row_group(0, columns=[field.name]).column(0)
        lengths = pc.list_value_length(col).drop_null()
        if len(lengths) == 0:
            raise ManifestError(f"feature column {field.name!r} has no values to size the vectors with")
        return int(lengths[0].as_py())
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t)):
        return 1
    raise ManifestError(f"feature column {field.name!r} has type {field.type}, which is not numeric")


def _to_float_matrix(column: pa.ChunkedArray | pa.Array, name: str, width: int) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    n = len(arr)
    if arr.null_count:
        raise ManifestError(f"feature column {name!r} has null values in the clean data")
    t = arr.type
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        if not pa.types.is_fixed_size_list(t):
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            if n and (lengths.min() != width or lengths.max() != width):
                raise ManifestError(f"feature column {name!r} has vectors of different lengths (expected {width})")
        values = arr.flatten()
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values = pc.cast(pc.utf8_trim_whitespace(values), pa.float64())
        return _finite_float32(values.to_numpy(zero_copy_only=False), name).reshape(n, width)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            arr = pc.cast(pc.utf8_trim_whitespace(arr), pa.float64())
        except pa.ArrowInvalid as exc:
            raise ManifestError(f"feature column {name!r} holds text that is not a number ({exc})") from None
    elif not pa.types.is_floating(t):
        arr = pc.cast(arr, pa.float64())
    return _finite_float32(arr.to_numpy(zero_copy_only=False), name).reshape(n, 1)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _finite_float32(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as float32, refusing what float32 would turn into inf (and NaN/inf already there).

    The pipeline quarantines non-finite features; a finite float64 beyond float32's range
    (|x| > 3.4e38) would still become inf on the way to the model, so it is refused by column
    here rather than handed out silently.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(values, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        source = np.asarray(values, dtype=np.float64)[bad]
        overflow = source[np.isfinite(source)]
        if len(overflow):
            raise ManifestError(
                f"feature column {name!r} holds {overflow[0]!r} ({len(overflow)} value(s) in all), beyond the "
                f"float32 range (+-{FLOAT32_MAX:.3g}) the training tensors use: it would reach the model as inf. "
                "Rescale that feature, or quarantine such rows before publishing"
            )
        raise ManifestError(
            f"feature column {name!r} holds {int(bad.sum())} NaN or infinite value(s) in the clean data, which "
            "should hold none (the sanitizer quarantines them); drop or quarantine such rows before training"
        )
    return out


def _is_integer_labels(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_boolean(t)


def _build_label_map(data: CleanData, label: str) -> dict:
    """Sorted distinct label values -> 0..K-1, over every verified shard."""
    values: set = set()
    for shard in data.shards:
        col = _verified_parquet(shard).read(columns=[label]).column(0)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        values.update(pc.unique(col.drop_null()).to_pylist())
    try:
        ordered = sorted(values)
    except TypeError:
        ordered = sorted(values, key=repr)
    return {v: i for i, v in enumerate(ordered)}


def _labels_to_int(column: pa.ChunkedArray | pa.Array, label: str, label_map: dict | None) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.null_count:
        raise ManifestError(f"label column {label!r} has null values in the clean data")
    if label_map is None:
        return np.asarray(pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    keys = list(label_map.keys())
    codes = np.asarray([label_map[k] for k in keys], dtype=np.int64)
    key_array = pa.array(keys)
    if key_array.type != arr.type:
        try:
            key_array = key_array.cast(arr.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            arr = arr.cast(key_array.type)
    index = pc.index_in(arr, value_set=key_array)
    if index.null_count:
        missing = pc.unique(pc.filter(arr, pc.is_null(index))).to_pylist()[:5]
        raise ValueError(f"label value(s) {missing} of column {label!r} are not in label_map")
    return codes[np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)]


# --------------------------------------------------------------------------- torch


def make_torch_dataset(data: CleanData, features=None, label=None, batch_size=1024, label_map=None, ids=False):
    """Same as :meth:`CleanData.torch_dataset`."""
    return _torch_batches_class()(data, features, label, batch_size, label_map, ids)


_TORCH_CLASS = None


def _torch_batches_class():
    """Build :class:`TorchBatches` on first use, so importing this module does not import torch."""
    global _TORCH_CLASS
    if _TORCH_CLASS is not None:
        return _TORCH_CLASS
    import torch.utils.data

    class TorchBatches(_TorchBatchesMixin, torch.utils.data.IterableDataset):
        __doc__ = _TorchBatchesMixin.__doc__

    TorchBatches.__module__ = __name__
    TorchBatches.__qualname__ = "TorchBatches"
    _TORCH_CLASS = TorchBatches
    return TorchBatches


def __getattr__(name: str):
    # ``sanitizer.training.TorchBatches`` (and pickling datasets into spawned DataLoader workers) needs torch.
    if name == "TorchBatches":
        return _torch_batches_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _TorchBatchesMixin:
    """Streams verified clean shards as ``(features float32 [b, d], labels int64 [b])`` batches.

    Rows are cut into ``batch_size`` pieces over all shards in manifest order; under a DataLoader
    each worker streams its own contiguous run of pieces (``torch.utils.data.get_worker_info()``),
    so every clean row comes out exactly once whatever ``num_workers`` is: use
    ``DataLoader(ds, batch_size=None, num_workers=N)``. Every batch is full but the last one.
    ``ids=True`` adds a third item, the batch's record ids (a list).

    ``features`` default to the manifest's feature columns; a fixed-size list column (64 pixels,
    an embedding) becomes that many features. Integer labels pass through as they are
    (``label_map`` None); any other label type is mapped to 0..K-1 by a sorted ``label_map``
    (value -> index) built over the clean data, or the one you pass. Attributes: ``features``,
    ``feature_dim``, ``label``, ``label_map``, ``classes`` (values in index order, or None), ``rows``.
    """

    def __init__(self, data: CleanData, features=None, label=None, batch_size=1024, label_map=None, ids=False):
        super().__init__()
        self.shards = data.shards
        self.features = _feature_list(data, features)
        self.label = label or data.label_column
        if not self.label:
            raise ValueError("no label column: the manifest names none, pass label=")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.id_column = data.id_column if ids else None
        if ids and not self.id_column:
            raise ValueError("ids=True but the manifest names no id column")
        schema = self._schema(data.manifest)
        missing = [c for c in [*self.features, self.label] if c not in schema.names]
        if missing:
            raise ValueError(f"column(s) {missing} are not in the clean data; columns are {schema.names}")
        first = self.shards[0] if self.shards else None
        self.widths = tuple(_feature_width(schema.field(c), first) for c in self.features)
        self.feature_dim = int(sum(self.widths))
        if label_map is not None:
            self.label_map = dict(label_map)
        elif _is_integer_labels(schema.field(self.label).type):
            self.label_map = None
        else:
            self.label_map = _build_label_map(data, self.label)
        self.classes = (
            [k for k, _ in sorted(self.label_map.items(), key=lambda kv: kv[1])] if self.label_map else None
        )
        self.rows = sum(s.rows for s in self.shards)
        # (shard index, row group index, first global row, rows) for every row group, in manifest order.
        self._groups = []
        offset = 0
        for si, shard in enumerate(self.shards):
            for gi, n in enumerate(shard.row_groups):
                self._groups.append((si, gi, offset, n))
                offset += n

    def _schema(self, manifest: dict) -> pa.Schema:
        if self.shards:
            first = self.shards[0]
            return first.schema if first.schema is not None else _verified_parquet(first).schema_arrow
        return _manifest_schema(manifest, None)

    def __len__(self) -> int:
        return -(-self.rows // self.batch_size)

    def row_range(self, worker: int = 0, workers: int = 1) -> tuple[int, int]:
        """The global rows ``[start, stop)`` that worker ``worker`` of ``workers`` streams."""
        pieces = len(self)
        lo = pieces * worker // workers
        hi = pieces * (worker + 1) // workers
        return min(lo * self.batch_size, self.rows), min(hi * self.batch_size, self.rows)

    def __iter__(self) -> Iterator[tuple]:
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        start, stop = self.row_range(worker, workers)
        buffer: list[tuple] = []
        buffered = 0
        for part in self._segments(start, stop):
            buffer.append(part)
            buffered += len(part[1])
            while buffered >= self.batch_size:
                batch, buffer, buffered = _take(buffer, self.batch_size)
                yield self._tensors(batch)
        if buffered:
            batch, buffer, buffered = _take(buffer, buffered)
            yield self._tensors(batch)

    def _tensors(self, batch):
        import torch

        X, y, idv = batch
        X = X if X.flags.writeable else X.copy()  # arrays straight from Arrow are read-only
        y = y if y.flags.writeable else y.copy()
        out = (torch.from_numpy(X), torch.from_numpy(y))
        return out + (idv,) if self.id_column else out

    def _segments(self, start: int, stop: int):
        """(X, y, ids) for the global rows [start, stop), one row group (or part of one) at a time.

        Each shard the range touches is read once into memory and verified against the manifest
        (:func:`_read_verified`) before any of its row groups is parsed, in whichever process runs
        this (a DataLoader worker verifies what it reads itself); only one shard is held at a time.
        """
        columns = list(dict.fromkeys([*self.features, self.label] + ([self.id_column] if self.id_column else [])))
        current = None  # (shard index, ParquetFile over its verified bytes)
        for si, gi, first, n in self._groups:
            if first + n <= start or first >= stop:
                continue
            if current is None or current[0] != si:
                current = None  # let the previous shard's bytes go before reading the next
                current = (si, _verified_parquet(self.shards[si]))
            table = current[1].read_row_group(gi, columns=columns)
            lo, hi = max(start - first, 0), min(stop - first, n)
            if lo or hi != n:
                table = table.slice(lo, hi - lo)
            if self.features:
                X = np.concatenate(
                    [_to_float_matrix(table.column(c), c, w) for c, w in zip(self.features, self.widths)], axis=1
                )
            else:
                X = np.zeros((table.num_rows, 0), dtype=np.float32)
            y = _labels_to_int(table.column(self.label), self.label, self.label_map)
            idv = table.column(self.id_column).to_pylist() if self.id_column else None
            yield np.ascontiguousarray(X, dtype=np.float32), y, idv


def _feature_list(data: CleanData, features) -> list[str]:
    if features is None:
        cols = data.feature_columns
        if not cols:
            raise ValueError("the manifest names no feature columns; pass features=[...]")
        return cols
    if isinstance(features, str):
        return [features]
    return list(features)


def _take(buffer: list[tuple], n: int) -> tuple[tuple, list[tuple], int]:
    """The first ``n`` rows of the buffered (X, y, ids) parts, and what is left."""
    taken, rest, need = [], [], n
    for X, y, idv in buffer:
        if need <= 0:
            rest.append((X, y, idv))
        elif len(y) <= need:
            taken.append((X, y, idv))
            need -= len(y)
        else:
            taken.append((X[:need], y[:need], idv[:need] if idv is not None else None))
            rest.append((X[need:], y[need:], idv[need:] if idv is not None else None))
            need = 0
    X = taken[0][0] if len(taken) == 1 else np.concatenate([t[0] for t in taken])
    y = taken[0][1] if len(taken) == 1 else np.concatenate([t[1] for t in taken])
    idv = None if taken[0][2] is None else [v for t in taken for v in t[2]]
    left = sum(len(t[1]) for t in rest)
    return (np.ascontiguousarray(X), np.ascontiguousarray(y), idv), rest, left
