"""The verified clean data of a published run: :func:`load_manifest`, :class:`CleanData`, :class:`ManifestError`.

:func:`load_manifest` is the only door: it reads ``manifest.json`` and checks every
clean shard it lists against the sha256, size and row count recorded at publication,
and that ``clean/`` holds no Parquet file the manifest does not list. Anything off
(a modified shard, a missing one, an unlisted one, a row count that does not match
the file, a ``provenance.json`` that is not the one the manifest was published with, a
field of the wrong type) raises :class:`ManifestError` naming it, before any row is handed
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
from typing import Sequence

import pyarrow as pa

from sanitizer.data.layout import CLEAN_DIR, MANIFEST
from sanitizer.training.binding import check_fields, check_provenance
from sanitizer.training.columns import Vocabulary, categorical_columns_of, date_columns_of, kinds_of, vocabularies_of
from sanitizer.training.media import image_columns_of, text_columns_of
from sanitizer.training.shards import (
    ManifestError,
    Shard,
    _exists,
    _is_uri,
    _join,
    _list_parquet,
    _list_uri,
    _manifest_schema,
    _read_bytes,
    _resolve,
    _same_file,
    _shard_relpath,
    _verified_parquet,
    _verify_shard,
    _check_sha256_text,
    _open,
)
from sanitizer.training.torch import make_torch_dataset  # torch itself is imported on first use

SUPPORTED_MANIFEST_VERSIONS = (1,)


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
    Checks that every field it reads has its type (a damaged ``rows`` or ``bytes`` is a ManifestError);
    that ``OUT/provenance.json`` has the sha256 the manifest names and records the same run, as
    succeeded, with the same clean shards (``sanitizer.training.binding``); for every shard the manifest
    lists under ``clean``: it exists, its sha256 and size match, its Parquet footer holds the recorded
    row count; the shard counts add up to ``clean.rows``; and ``OUT/clean/`` holds no ``.parquet`` file
    the manifest does not list.
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
    check_fields(manifest, manifest_path)  # every field read below has its type: ManifestError, never ValueError
    clean = manifest["clean"]

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
    check_provenance(out, manifest, manifest_path)  # the provenance.json it was published with, of the same run
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
    parts: tuple["CleanData", ...] = ()  # the runs read as one (sanitizer.training.several); empty for one run

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
            # ParquetFile.read, not pq.read_table: read_table's dataset path can leave a thread that aborts the
            # interpreter at exit ("terminate called without an active exception", pyarrow 25, seen under load).
            tables.append(_verified_parquet(shard).read(columns=columns))
        if not tables:
            return _manifest_schema(self.manifest, columns).empty_table()
        return pa.concat_tables(tables)

    def to_pandas(self, columns: Sequence[str] | None = None):
        """Every clean row as a pandas DataFrame (``columns`` to read only some)."""
        return self.to_table(columns).to_pandas()

    @property
    def column_kinds(self) -> dict[str, str]:
        """Column -> kind as the run recorded it (``{}`` for a manifest written before column kinds)."""
        return kinds_of(self.manifest)

    @property
    def categorical_columns(self) -> list[str]:
        """The columns the torch stream can give as codes: categorical ones and booleans stored as text."""
        return categorical_columns_of(self.manifest, self.feature_columns)

    @property
    def date_columns(self) -> list[str]:
        return date_columns_of(self.manifest)

    @property
    def image_columns(self) -> list[str]:
        """The image columns the run judged: the torch stream gives each as a float32 ``[b, 3, H, W]`` tensor."""
        return image_columns_of(self.manifest)

    @property
    def text_columns(self) -> list[str]:
        """The text columns: the torch stream gives each, when asked for, as a list of strings per batch."""
        return text_columns_of(self.manifest)

    def vocabulary(self, column: str) -> Vocabulary:
        """The manifest's :class:`~sanitizer.training.columns.Vocabulary` of a categorical or boolean column:
        ``encode`` values to codes and ``decode`` codes to values as the torch stream does."""
        vocabularies = vocabularies_of(self.manifest)
        if column not in vocabularies:
            kind = self.column_kinds.get(column)
            raise KeyError(f"the manifest records no vocabulary for {column!r} ("
                           + (f"its kind is {kind}" if kind else "no column kinds recorded for it") + ")")
        return vocabularies[column]

    def torch_dataset(self, features: Sequence[str] | str | None = None, label: str | None = None,
                      batch_size: int = 1024, label_map: dict | None = None, ids: bool = False,
                      fill_missing: float | dict[str, float] | None = None,
                      categorical_columns: Sequence[str] | str | bool | None = None,
                      dates: str | None = None, date_columns: Sequence[str] | str | None = None,
                      image_columns: Sequence[str] | str | bool | None = None,
                      text_columns: Sequence[str] | str | bool | None = None, image_size: int | None = None,
                      image_root: str | os.PathLike | None = None):
        """A :class:`torch.utils.data.IterableDataset` of ``(features, labels)`` batches (see :class:`TorchBatches`).

        Clean data may hold missing feature values (a run keeps such rows clean by default, with a
        ``missing:COLUMN`` reason): the dataset refuses them, naming the column, unless ``fill_missing``
        says what they become (one number for every column, or ``{column: number}``).

        ``categorical_columns="all"`` (or a list) adds the categorical columns as int64 codes by the
        manifest's vocabularies: batches become ``(features, codes, labels)``. ``dates="days"`` or
        ``"parts"`` appends the date columns (all, or ``date_columns``) to the features.

        Every image column the run judged (or those in ``image_columns``; ``False`` for none) adds a float32
        ``[b, 3, image_size, image_size]`` tensor in [0, 1], decoded from the original value (``image_size``:
        by default the size the run decoded to; relative paths inside ``image_root``, by default the folder
        the run read them from); ``text_columns="all"`` (or a list) adds each text column as a list of
        strings. ``ds.parts`` names the items of a batch in order."""
        return make_torch_dataset(self, features, label, batch_size, label_map, ids, fill_missing,
                                  categorical_columns, dates, date_columns, image_columns, text_columns,
                                  image_size, image_root)
