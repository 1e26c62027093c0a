"""The torch stream over verified clean data: :func:`make_torch_dataset` and :class:`TorchBatches`.

``CleanData.torch_dataset(...)`` (or ``make_torch_dataset(data, ...)``) is a
:class:`torch.utils.data.IterableDataset` of ``(features float32 [b, d], labels int64 [b])`` batches;
every DataLoader worker reads, verifies and parses the shards it streams itself (see
:mod:`sanitizer.training.manifest`). Importing this module does not import torch: the class is built
on first use.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.training.shards import ManifestError, Shard, _manifest_schema, _verified_parquet


class CleanData(Protocol):
    """What the stream reads of a :class:`sanitizer.training.manifest.CleanData` (which hands itself in):
    the verified shards and the column roles the manifest names."""

    manifest: dict
    shards: tuple[Shard, ...]

    @property
    def label_column(self) -> str | None: ...

    @property
    def id_column(self) -> str | None: ...

    @property
    def feature_columns(self) -> list[str]: ...

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


def _fill_values(fill, features: list[str]) -> dict[str, float]:
    """``fill_missing`` as {feature column: finite number}."""
    if fill is None:
        return {}
    values = dict(fill) if isinstance(fill, dict) else {c: fill for c in features}
    out = {}
    for column, value in values.items():
        if column not in features:
            raise ValueError(f"fill_missing names {column!r}, which is not a feature column ({features})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ValueError(f"fill_missing for {column!r} must be a finite number, got {value!r}")
        out[column] = float(value)
    return out


def _missing_error(name: str, count: int) -> ManifestError:
    return ManifestError(
        f"feature column {name!r} has {count} missing (null or NaN) value(s) in the clean data: the run kept "
        f"those rows clean with the reason missing:{name} (missing_features: report). Pass fill_missing="
        f"{{{name!r}: VALUE}} (or one number for every column) to train on them, or run the sanitizer with "
        "--missing-features quarantine to hold such rows"
    )


def _to_float_matrix(column: pa.ChunkedArray | pa.Array, name: str, width: int,
                     fill: float | None = None) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    n = len(arr)
    t = arr.type
    scalar = not (pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t))
    if arr.null_count and not (scalar and fill is not None):
        raise _missing_error(name, arr.null_count) if scalar else ManifestError(
            f"feature column {name!r} has null values in the clean data")
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        if not pa.types.is_fixed_size_list(t):
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            if n and (lengths.min() != width or lengths.max() != width):
                raise ManifestError(f"feature column {name!r} has vectors of different lengths (expected {width})")
        values = arr.flatten()
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            try:
                values = pc.cast(pc.utf8_trim_whitespace(values), pa.float64())
            except pa.ArrowInvalid as exc:
                raise ManifestError(f"feature column {name!r} holds text that is not a number ({exc})") from None
        return _finite_float32(values.to_numpy(zero_copy_only=False), name).reshape(n, width)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        text = pc.utf8_trim_whitespace(arr)
        text = pc.if_else(pc.is_in(text, value_set=_MISSING_WORDS), pa.scalar(None, text.type), text)
        try:
            arr = pc.cast(text, pa.float64())
        except pa.ArrowInvalid as exc:
            raise ManifestError(f"feature column {name!r} holds text that is not a number ({exc})") from None
    elif not pa.types.is_floating(t):
        try:
            arr = pc.cast(arr, pa.float64())
        except pa.ArrowInvalid as exc:
            raise ManifestError(
                f"feature column {name!r} holds {t} values that a float feature cannot hold exactly ({exc}); "
                "leave the column out of the features (feature_columns) or rescale it before training"
            ) from None
    values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)  # nulls read as NaN
    missing = np.isnan(values)
    if missing.any():
        if fill is None:
            raise _missing_error(name, int(missing.sum()))
        values = np.where(missing, fill, values)
    return _finite_float32(values, name).reshape(n, 1)


FLOAT32_MAX = float(np.finfo(np.float32).max)
_MISSING_WORDS = pa.array(["NA", "N/A", "n/a", "#N/A", "NULL", "null", "None", "none", "nil", ""])
"""Text a feature stored as text holds for a missing value (the same words as ``records.MISSING_WORDS``,
which this module cannot import: the training side imports no Beam)."""


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


def make_torch_dataset(data: CleanData, features=None, label=None, batch_size=1024, label_map=None, ids=False,
                       fill_missing=None):
    """Same as :meth:`CleanData.torch_dataset`."""
    return _torch_batches_class()(data, features, label, batch_size, label_map, ids, fill_missing)


_TORCH_CLASS = None


def _torch_batches_class():
    """Build :class:`TorchBatches` on first use, so importing this module does not import torch."""
    global _TORCH_CLASS
    if _TORCH_CLASS is not None:
        return _TORCH_CLASS
    import torch.utils.data

    class TorchBatches(_TorchBatchesMixin, torch.utils.data.IterableDataset):
        __doc__ = _TorchBatchesMixin.__doc__

    TorchBatches.__module__ = "sanitizer.training"  # where pickle (spawned DataLoader workers) finds it
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

    Missing feature values (null or NaN; a run keeps such rows clean by default) are refused with an
    error naming the column, unless ``fill_missing`` gives what they become: one number for every
    feature column, or ``{column: number}`` (a column left out of the dict is still refused).

    ``features`` default to the manifest's feature columns; a fixed-size list column (64 pixels,
    an embedding) becomes that many features. Integer labels pass through as they are
    (``label_map`` None); any other label type is mapped to 0..K-1 by a sorted ``label_map``
    (value -> index) built over the clean data, or the one you pass. Attributes: ``features``,
    ``feature_dim``, ``label``, ``label_map``, ``classes`` (values in index order, or None), ``rows``.
    """

    def __init__(self, data: CleanData, features=None, label=None, batch_size=1024, label_map=None, ids=False,
                 fill_missing=None):
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
        self.fill_missing = _fill_values(fill_missing, self.features)
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
                    [_to_float_matrix(table.column(c), c, w, self.fill_missing.get(c))
                     for c, w in zip(self.features, self.widths)], axis=1
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
