"""The torch stream over verified clean data: :func:`make_torch_dataset` and :class:`TorchBatches`.

``CleanData.torch_dataset(...)`` (or ``make_torch_dataset(data, ...)``) is a
:class:`torch.utils.data.IterableDataset` of ``(features float32 [b, d], labels int64 [b])`` batches
(``(features, codes int64 [b, k], labels)`` when categorical columns are asked for, with
``categorical_columns=``; date columns join the features with ``dates=``: see :class:`TorchBatches`);
every DataLoader worker reads, verifies and parses the shards it streams itself (see
:mod:`sanitizer.training.manifest`). Importing this module does not import torch: the class is built
on first use.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.training.columns import (
    DATE_FORMS,
    categorical_columns_of,
    date_columns_of,
    date_matrix,
    encode,
    kinds_of,
    vocabularies_of,
)
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
    """``fill_missing`` as {feature or date column: finite number}."""
    if fill is None:
        return {}
    values = dict(fill) if isinstance(fill, dict) else {c: fill for c in features}
    out = {}
    for column, value in values.items():
        if column not in features:
            raise ValueError(f"fill_missing names {column!r}, which is not a feature or date column ({features})")
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
                       fill_missing=None, categorical_columns=None, dates=None, date_columns=None):
    """Same as :meth:`CleanData.torch_dataset`."""
    return _torch_batches_class()(data, features, label, batch_size, label_map, ids, fill_missing,
                                  categorical_columns, dates, date_columns)


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

    ``features`` default to the manifest's feature columns (the numeric columns the run judged);
    a fixed-size list column (64 pixels, an embedding) becomes that many features. Integer labels
    pass through as they are (``label_map`` None); any other label type is mapped to 0..K-1 by a
    sorted ``label_map`` (value -> index) built over the clean data, or the one you pass.

    Other kinds, by the manifest's ``columns`` (a manifest written before kinds has none):

    * categorical columns (and booleans stored as text) are left out unless asked for:
      ``categorical_columns="all"`` (every one the manifest records, in input order) or a list.
      Batches are then ``(features, codes, labels)``: ``codes`` int64 ``[b, k]``, one column per
      categorical column, by the manifest's vocabulary (``vocabularies[column]``): a value the run
      never saw gets the column's ``unseen_code``, a null its ``missing_code``; ``category_sizes``
      holds each column's number of codes (the size of an embedding table);
    * date columns are left out unless asked for: ``dates="days"`` (one float per column: days since
      1970-01-01 UTC, the time of day as the fraction; float32 resolves about two minutes today) or
      ``dates="parts"`` (three: year, month, day), for every date column of the manifest or the
      ``date_columns`` named. They are appended to ``features`` after the numeric columns
      (``feature_names`` names every column of the matrix); a missing date is refused like a missing
      number unless ``fill_missing`` names the column (the value fills every part);
    * booleans stored as booleans (or 0/1) are numeric features (0.0 / 1.0), as the run judged them;
    * text, id-like and unsupported columns are never in a tensor (read them with ``to_pandas``).

    Attributes: ``features``, ``feature_names``, ``feature_dim``, ``categorical_columns`` (None when
    not asked for), ``vocabularies``, ``category_sizes``, ``date_columns``, ``dates``, ``label``,
    ``label_map``, ``classes`` (values in index order, or None), ``rows``.
    """

    def __init__(self, data: CleanData, features=None, label=None, batch_size=1024, label_map=None, ids=False,
                 fill_missing=None, categorical_columns=None, dates=None, date_columns=None):
        super().__init__()
        self.shards = data.shards
        kinds = kinds_of(data.manifest)
        self.features = _feature_list(data, features)
        _check_feature_kinds(self.features, kinds)
        self.categorical_columns = _categorical_list(data, categorical_columns, kinds)
        vocabularies = vocabularies_of(data.manifest)
        self.vocabularies = {c: vocabularies[c] for c in self.categorical_columns or []}
        self.category_sizes = [self.vocabularies[c].cardinality for c in self.categorical_columns or []]
        self.dates, self.date_columns = _date_list(data, dates, date_columns, kinds)
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
        wanted = [*self.features, *(self.categorical_columns or []), *self.date_columns, self.label]
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise ValueError(f"column(s) {missing} are not in the clean data; columns are {schema.names}")
        first = self.shards[0] if self.shards else None
        self.widths = tuple(_feature_width(schema.field(c), first) for c in self.features)
        self.fill_missing = _fill_values(fill_missing, self.features + self.date_columns)
        parts = ["year", "month", "day"] if self.dates == "parts" else ["days"]
        self.feature_names = [f"{c}[{i}]" if w > 1 else c for c, w in zip(self.features, self.widths)
                              for i in range(w)] + [f"{c}.{p}" for c in self.date_columns for p in parts]
        self.feature_dim = len(self.feature_names)
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
            buffered += len(part[2])
            while buffered >= self.batch_size:
                batch, buffer, buffered = _take(buffer, self.batch_size)
                yield self._tensors(batch)
        if buffered:
            batch, buffer, buffered = _take(buffer, buffered)
            yield self._tensors(batch)

    def _tensors(self, batch):
        import torch

        X, codes, y, idv = batch
        X = X if X.flags.writeable else X.copy()  # arrays straight from Arrow are read-only
        y = y if y.flags.writeable else y.copy()
        out = (torch.from_numpy(X),) + ((torch.from_numpy(codes),) if codes is not None else ()) \
            + (torch.from_numpy(y),)
        return out + (idv,) if self.id_column else out

    def _segments(self, start: int, stop: int):
        """(X, codes, y, ids) for the global rows [start, stop), one row group (or part of one) at a time.

        Each shard the range touches is read once into memory and verified against the manifest
        (:func:`_read_verified`) before any of its row groups is parsed, in whichever process runs
        this (a DataLoader worker verifies what it reads itself); only one shard is held at a time.
        """
        columns = list(dict.fromkeys([*self.features, *(self.categorical_columns or []), *self.date_columns,
                                      self.label] + ([self.id_column] if self.id_column else [])))
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
            blocks = [_to_float_matrix(table.column(c), c, w, self.fill_missing.get(c))
                      for c, w in zip(self.features, self.widths)]
            blocks += [self._date_block(table.column(c), c) for c in self.date_columns]
            X = np.concatenate(blocks, axis=1) if blocks else np.zeros((table.num_rows, 0), dtype=np.float32)
            codes = None
            if self.categorical_columns is not None:
                codes = np.zeros((table.num_rows, len(self.categorical_columns)), dtype=np.int64)
                for j, c in enumerate(self.categorical_columns):
                    codes[:, j] = encode(table.column(c), self.vocabularies[c])
            y = _labels_to_int(table.column(self.label), self.label, self.label_map)
            idv = table.column(self.id_column).to_pylist() if self.id_column else None
            yield np.ascontiguousarray(X, dtype=np.float32), codes, y, idv

    def _date_block(self, column, name: str) -> np.ndarray:
        values = date_matrix(column, name, self.dates)
        missing = np.isnan(values).any(axis=1)
        if missing.any():
            fill = self.fill_missing.get(name)
            if fill is None:
                raise ManifestError(f"date column {name!r} has {int(missing.sum())} missing value(s) in the clean "
                                    f"data; pass fill_missing={{{name!r}: VALUE}} to say what they become (the "
                                    "value fills every part), or leave the column out (date_columns=)")
            values[missing] = fill
        return _finite_float32(values, name)


def _feature_list(data: CleanData, features) -> list[str]:
    if features is None:
        cols = data.feature_columns
        if not cols:
            raise ValueError("the manifest names no feature columns; pass features=[...]")
        return cols
    if isinstance(features, str):
        return [features]
    return list(features)


def _check_feature_kinds(features: list[str], kinds: dict[str, str]) -> None:
    """A categorical or date column named as a float feature: say where it belongs."""
    for c in features:
        if kinds.get(c) == "categorical":
            raise ValueError(f"column {c!r} is categorical: ask for its codes with categorical_columns=[{c!r}] "
                             "(or 'all'), not features=")
        if kinds.get(c) == "date":
            raise ValueError(f"column {c!r} is a date: ask for it with dates='days' or 'parts' "
                             f"(date_columns=[{c!r}]), not features=")


def _no_kinds(asked: str) -> ValueError:
    return ValueError(f"{asked}, but the manifest records no column kinds (written by a sanitizer before "
                      "column kinds existed): run the sanitizer again to publish them")


def _categorical_list(data: CleanData, asked, kinds: dict[str, str]) -> list[str] | None:
    """None (not asked for), every categorical column ("all" / True), or the columns named, each with a
    vocabulary in the manifest."""
    if asked is None or asked is False:
        return None
    available = categorical_columns_of(data.manifest, data.feature_columns)
    if not kinds:
        raise _no_kinds("categorical_columns is given")
    if asked is True or asked == "all":
        return available
    names = [asked] if isinstance(asked, str) else list(asked)
    for c in names:
        if c not in available:
            raise ValueError(f"categorical_columns names {c!r}, which the manifest records as "
                             f"{kinds.get(c, 'no column')!r}; its categorical columns are {available}")
    return names


def _date_list(data: CleanData, dates, asked, kinds: dict[str, str]) -> tuple[str, list[str]]:
    """(the date form, the date columns): none unless ``dates`` or ``date_columns`` is given."""
    if dates is None and not asked:
        return "days", []
    form = dates or "days"
    if form not in DATE_FORMS:
        raise ValueError(f"dates must be one of {', '.join(map(repr, DATE_FORMS))}, got {dates!r}")
    if not kinds:
        raise _no_kinds("dates is given")
    available = date_columns_of(data.manifest)
    if asked is None or asked == "all":
        return form, available
    names = [asked] if isinstance(asked, str) else list(asked)
    for c in names:
        if c not in available:
            raise ValueError(f"date_columns names {c!r}, which the manifest records as "
                             f"{kinds.get(c, 'no column')!r}; its date columns are {available}")
    return form, names


def _take(buffer: list[tuple], n: int) -> tuple[tuple, list[tuple], int]:
    """The first ``n`` rows of the buffered (X, codes, y, ids) parts, and what is left (codes and ids may be
    None)."""
    def cut(part, lo, hi):
        return tuple(None if item is None else item[lo:hi] for item in part)

    taken, rest, need = [], [], n
    for part in buffer:
        rows = len(part[2])
        if need <= 0:
            rest.append(part)
        elif rows <= need:
            taken.append(part)
            need -= rows
        else:
            taken.append(cut(part, 0, need))
            rest.append(cut(part, need, rows))
            need = 0

    def join(i):
        items = [t[i] for t in taken]
        if items[0] is None:
            return None
        if isinstance(items[0], list):
            return [v for item in items for v in item]
        return np.ascontiguousarray(items[0] if len(items) == 1 else np.concatenate(items))

    left = sum(len(t[2]) for t in rest)
    return tuple(join(i) for i in range(4)), rest, left
