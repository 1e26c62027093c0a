"""The reference rows a report's suspects are compared with: the neighbours their evidence names.

The detectors name the reference rows behind a verdict in the evidence lists
their ``neighbour_keys`` hook names ([{id, label}] or [{id, distance}]: label_flip's
``neighbours``, outlier's ``nearest``; see
:func:`sanitizer.report.evidence.referenced`). :func:`lookup` fetches those
rows' labels and features so the page can show each suspect beside them:

- the ids to fetch come from the shown rows, at most
  :data:`~sanitizer.detectors.shared.evidence_text.MAX_NEIGHBOURS` per neighbour list and
  detector, in rank order, :data:`MAX_REFERENCE_IDS` distinct ids in all;
- ONE pass over the run's clean and quarantine shards (the record's shard
  list, else ``clean/*.parquet`` and ``quarantine/*.parquet``; local paths or
  any ``scheme://`` Beam filesystem), reading only the id, label and feature
  columns needed, in record batches, ids matched with ``pyarrow.compute.is_in``;
- for tabular data, a typical range per feature (5th-95th percentile) from a
  bounded, deterministic sample of the clean rows seen in that pass (every
  k-th row, k a power of two that doubles as the pass goes, at most
  :data:`SAMPLE_ROWS` rows; the quarantine rows when there are no clean ones).

Cost: the id column of every output shard is read once. The feature columns
are read for the row groups that hold a referenced row and, for tabular data,
for every clean row group (the sample); so at worst the features of every
output shard once - about what reading the clean output for training costs,
without decoding the columns the report does not show.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sanitizer.data.batch import id_strings
from sanitizer.data.layout import CLEAN_DIR, QUARANTINE_DIR, SCORE_PREFIX
from sanitizer.io.fs import list_files
from sanitizer.report import written

BATCH_ROWS = 8192
MAX_REFERENCE_IDS = 25_000  # distinct referenced ids fetched for one report (the highest-ranked rows' first)
SAMPLE_ROWS = 2000  # clean rows sampled for the typical ranges
MAX_FEATURES = 1024  # feature values the tabular view knows (the first columns' first)
SHOWN_FEATURES = 8  # features shown per suspect in the tabular view
TYPICAL = (5.0, 95.0)  # percentiles of the typical range


# --------------------------------------------------------------------------- file access


def is_remote(path: str) -> bool:
    return "://" in path


def open_shard(path: str):
    if is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.open(path)
    return open(path, "rb")


def output_files(out_dir: str, listed: list[str], folder: str) -> list[str]:
    """A run's shards of ``folder`` (clean or quarantine): the ``listed`` paths (relative to the output
    folder, or absolute / URIs), else every ``folder/*.parquet``."""
    out = out_dir.rstrip("/")
    listed = [p for p in listed if p]
    if listed:
        return [p if (is_remote(p) or os.path.isabs(p)) else f"{out}/{p}" for p in listed]
    if is_remote(out):
        return list_files(f"{out}/{folder}/*.parquet")
    directory = os.path.join(out, folder)
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".parquet"))


def quarantine_files(out_dir: str, record) -> list[str]:
    """The quarantine shards: those the record lists, else every ``quarantine/*.parquet``."""
    return output_files(out_dir, [s.path for s in record.quarantine], QUARANTINE_DIR)


def run_files(out_dir: str, record) -> list[tuple[str, bool]]:
    """(path, is a quarantine shard) for every clean, then every quarantine shard of the run."""
    clean = output_files(out_dir, [s.path for s in record.clean], CLEAN_DIR)
    held = quarantine_files(out_dir, record)
    return [(p, False) for p in clean] + [(p, True) for p in held]


# --------------------------------------------------------------------------- values


def text(value) -> str | None:
    """A label as the detectors name classes: whole-number floats as integers, None for null / NaN."""
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None if math.isnan(value) else str(value)
        if value.is_integer():
            return str(int(value))
    return str(value)


def id_texts(column) -> list:
    """The ids as review's id strings (:func:`sanitizer.data.batch.id_strings`: decisions downloaded
    from the page are imported by them, and the detectors name neighbours by them)."""
    try:
        return id_strings(column)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. binary ids that are not UTF-8
        return [text(v) for v in column.to_pylist()]


def sig(value, digits: int = 4):
    """A finite JSON number rounded to ``digits`` significant digits (an int when whole), None otherwise."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    value = float(f"{value:.{digits}g}")
    return int(value) if value.is_integer() and abs(value) < 1e15 else value


# --------------------------------------------------------------------------- tabular features


@dataclass
class FeatureLayout:
    """The columns the tabular view reads: the numeric features (column, width, is a list) with one name per
    value, and the columns shown as written (column, kind: :mod:`sanitizer.report.written`)."""

    columns: list[tuple[str, int, bool]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    written: list[tuple[str, str]] = field(default_factory=list)

    def read(self) -> list[str]:
        """The shard columns this layout reads."""
        return [c for c, _, _ in self.columns] + [c for c, _ in self.written]


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def feature_layout(schema: pa.Schema, feature_columns: list[str], skip: tuple[str, ...] = (),
                   kinds: list[dict] = ()) -> FeatureLayout | None:
    """The record's numeric feature columns (scalars, and fixed-size numeric lists as ``col[i]``; the
    schema's numeric columns when the record names neither them nor a judged column shown as written), at
    most :data:`MAX_FEATURES` values; and the judged columns ``kinds`` (provenance's ``columns.kinds``) says
    are shown as written."""
    names = [c for c in feature_columns if c in schema.names]
    shown = written.columns(list(kinds), schema, set(names))
    if not names and not shown:
        names = [c for c in schema.names if c not in skip and not c.startswith("sanitizer_")
                 and not c.startswith(SCORE_PREFIX)]
    layout = FeatureLayout()
    for name in names:
        t = schema.field(name).type
        if _numeric(t):
            layout.columns.append((name, 1, False))
            layout.names.append(name)
        elif pa.types.is_fixed_size_list(t) and _numeric(t.value_type):
            layout.columns.append((name, t.list_size, True))
            layout.names.extend(f"{name}[{i}]" for i in range(t.list_size))
        if len(layout.names) >= MAX_FEATURES:
            break
    layout.names = layout.names[:MAX_FEATURES]
    layout.written = [c for c in shown if c[0] not in layout.names][: max(MAX_FEATURES - len(layout.names), 0)]
    return layout if layout.names or layout.written else None


def _as_float(col: pa.Array) -> np.ndarray:
    """A column's values as float64 for display: text features (kept as written in the shards) parsed,
    NaN where a value is no number; integers beyond +-2^53 rounded (they are shown, never judged)."""
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        import pandas as pd

        text = pd.Series(col.to_numpy(zero_copy_only=False), dtype=object)
        return pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return pc.cast(col, pa.float64(), safe=False).to_numpy(zero_copy_only=False)


def feature_matrix(batch, layout: FeatureLayout) -> np.ndarray:
    """(rows, features) float64 of a record batch or table; NaN where null or not finite."""
    n = batch.num_rows
    parts = []
    for name, width, is_list in layout.columns:
        if name not in batch.schema.names:
            parts.append(np.full((n, width), np.nan))
            continue
        col = batch.column(batch.schema.names.index(name))
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if is_list:
            valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            flat = _as_float(col.flatten())
            block = np.full((n, width), np.nan)
            if len(flat) == int(valid.sum()) * width:
                block[valid] = np.asarray(flat, dtype=np.float64).reshape(-1, width)
            parts.append(block)
        else:
            values = _as_float(col)
            parts.append(np.asarray(values, dtype=np.float64).reshape(n, 1))
    X = np.concatenate(parts, axis=1)[:, : len(layout.names)] if parts else np.zeros((n, 0))
    return np.where(np.isfinite(X), X, np.nan)


# --------------------------------------------------------------------------- the pass


@dataclass
class Lookup:
    found: dict[str, int] = field(default_factory=dict)  # id -> row of ``table``
    table: pa.Table | None = None  # the referenced rows: the columns read, plus "_held" (a quarantine row)
    sample: np.ndarray | None = None  # (m, features) rows sampled for the typical ranges
    sample_written: tuple[np.ndarray, np.ndarray] | None = None  # their values shown as written: (texts, days)
    sample_from: str | None = None  # "clean" or "quarantine"
    shards_read: int = 0
    shards_unreadable: int = 0
    rows_seen: int = 0


class _Sampler:
    """Every ``step``-th row seen (step doubling whenever more than SAMPLE_ROWS are kept): deterministic.
    Only the rows kept are decoded."""

    def __init__(self):
        self.step, self.seen, self.parts = 1, 0, []

    def add(self, batch: pa.RecordBatch, layout: FeatureLayout) -> None:
        pos = self.seen + np.arange(batch.num_rows)
        self.seen += batch.num_rows
        keep = pos % self.step == 0
        kept = batch if keep.all() else batch.filter(pa.array(keep))
        texts, days = written.values(kept, layout.written)
        self.parts.append((pos[keep], feature_matrix(kept, layout), texts, days))
        while sum(len(part[0]) for part in self.parts) > SAMPLE_ROWS:
            self.step *= 2
            self.parts = [tuple(a[part[0] % self.step == 0] for a in part) for part in self.parts]

    def matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(features, texts, days) of the rows kept."""
        kept = [part[1:] for part in self.parts if len(part[0])]
        return tuple(np.concatenate(a) for a in zip(*kept)) if kept else None


def collect_ids(rows: list[dict]) -> tuple[list[str], int]:
    """The distinct ids the rows' ``refs`` name, in rank order, at most MAX_REFERENCE_IDS; and how many
    more there were (their refs are marked ``skipped``: not looked up)."""
    order: dict[str, None] = {}
    skipped: set[str] = set()
    for row in rows:
        for ref in row.get("refs", []):
            ident = ref["id"]
            if ident not in order and ident not in skipped:
                if len(order) < MAX_REFERENCE_IDS:
                    order[ident] = None
                else:
                    skipped.add(ident)
            if ident in skipped:
                ref["skipped"] = True
    return list(order), len(skipped)


def reference_entries(found: Lookup, label_column: str) -> dict[str, dict]:
    """id -> {label, quarantined (only when the row is itself held)} for every row found."""
    table = found.table
    if table is None:
        return {}
    labels = table[label_column].to_pylist() if label_column in table.schema.names else None
    held = table["_held"].to_pylist()
    out = {}
    for ident, i in found.found.items():
        out[ident] = {"label": text(labels[i]) if labels is not None else None}
        if held[i]:
            out[ident]["quarantined"] = True
    return out


def _id_array(column) -> pa.Array:
    """:func:`id_texts` as an Arrow array (the cast id_strings makes, without Python strings)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array(id_texts(column), pa.string())


def lookup(files: list[tuple[str, bool]], id_column: str, label_column: str, columns: list[str], ids: list[str],
           layout: FeatureLayout | None = None) -> Lookup:
    """Fetch the rows whose id (as review's id strings) is in ``ids`` from ``files`` ((path, is quarantine));
    read ``columns`` besides id and label. With ``layout``, also sample rows for the typical ranges. A shard
    that cannot be read is counted in ``shards_unreadable`` and passed over: the report is still written."""
    result = Lookup()
    value_set = pa.array(list(dict.fromkeys(ids)), pa.string())
    samplers = {"clean": _Sampler(), "quarantine": _Sampler()}
    pieces: list[pa.Table] = []
    if not len(value_set) and layout is None:
        return result
    for path, held in files:
        # quarantine rows are sampled only when the run has no clean ones (clean shards come first)
        skip = layout is None or (held and samplers["clean"].seen)
        sampler = None if skip else samplers["quarantine" if held else "clean"]
        try:
            _scan(path, held, id_column, [id_column, label_column, *columns], value_set, layout, sampler, pieces,
                  result)
        except (OSError, pa.ArrowException):
            result.shards_unreadable += 1
    if pieces:
        table = pa.concat_tables(pieces, promote_options="permissive")
        result.table = table
        for i, ident in enumerate(table[id_column].to_pylist()):
            result.found.setdefault(ident, i)  # a duplicated id: the first row found
    if layout is not None:
        which = "clean" if samplers["clean"].seen else "quarantine"
        kept = samplers[which].matrix()
        if kept is not None:
            result.sample, result.sample_written = kept[0], kept[1:]
            result.sample_from = which
    return result


def _scan(path: str, held: bool, id_column: str, columns: list[str], value_set: pa.Array,
          layout: FeatureLayout | None, sampler: _Sampler | None, pieces: list, result: Lookup) -> None:
    """One shard: the id column of each row group; the other columns of row groups with a match or rows to
    sample, batch by batch."""
    with open_shard(path) as fh:
        pf = pq.ParquetFile(fh)
        names = pf.schema_arrow.names
        if id_column not in names:
            return
        result.shards_read += 1
        wanted = [c for c in dict.fromkeys(columns) if c in names]
        for group in range(pf.num_row_groups):
            group_ids = _id_array(pf.read_row_group(group, columns=[id_column]).column(0))
            result.rows_seen += len(group_ids)
            if sampler is None and not pc.any(pc.is_in(group_ids, value_set=value_set)).as_py():
                continue  # nothing referenced here, nothing to sample
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=wanted):
                if sampler is not None:
                    sampler.add(batch, layout)
                bid = _id_array(batch.column(id_column))
                mask = pc.is_in(bid, value_set=value_set)
                if pc.any(mask).as_py():
                    t = pa.Table.from_batches([batch]).filter(mask)
                    t = t.set_column(t.schema.names.index(id_column), id_column, bid.filter(mask))
                    pieces.append(t.append_column("_held", pa.array([held] * t.num_rows, pa.bool_())))
