"""The torch stream over verified clean data: :func:`make_torch_dataset` and :class:`TorchBatches`.

``CleanData.torch_dataset(...)`` (or ``make_torch_dataset(data, ...)``) is a
:class:`torch.utils.data.IterableDataset` of ``(features float32 [b, d], labels int64 [b])`` batches
(``(features, codes int64 [b, k], labels)`` when categorical columns are asked for, with
``categorical_columns=``; date columns join the features with ``dates=``; each image column adds a
float32 ``[b, 3, H, W]`` tensor and each text column asked for a list of strings: see :class:`TorchBatches`);
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
    check_feature_kinds,
    choose_categorical,
    choose_dates,
    date_matrix,
    encode,
    kinds_of,
    vocabularies_of,
)
from sanitizer.training import media
from sanitizer.training.shards import ManifestError, Shard, _manifest_schema, _verified_parquet
from sanitizer.training.values import feature_width, fill_values, finite_float32, to_float_matrix


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
                       fill_missing=None, categorical_columns=None, dates=None, date_columns=None,
                       image_columns=None, text_columns=None, image_size=None, image_root=None):
    """Same as :meth:`CleanData.torch_dataset`."""
    return _torch_batches_class()(data, features, label, batch_size, label_map, ids, fill_missing,
                                  categorical_columns, dates, date_columns, image_columns, text_columns,
                                  image_size, image_root)


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
    * image columns the run judged are in by default (``image_columns=`` names some, ``False`` none): each
      adds a float32 ``[b, 3, image_size, image_size]`` tensor in [0, 1], channels first, decoded from the
      original value as the run decoded it (:mod:`sanitizer.training.media`). ``image_size`` defaults to
      the size the run decoded to (the manifest's ``size``; 32 for a manifest without one); relative
      paths resolve inside ``image_root``, else the folder the run read them from (the manifest's
      ``base``). A clean record whose image cannot be read now raises ``ImageError`` naming its id;
    * text columns are left out unless asked for (``text_columns="all"`` or a list): each adds the batch's
      strings as a Python list (None where missing), to tokenise in the training loop;
    * id-like and unsupported columns are never in a batch (read them with ``to_pandas``).

    A batch is a tuple of the parts ``parts`` names, in this order: ``"features"`` (left out when the
    manifest names no feature columns, ``features`` is not given and image or text columns are there: an
    image-only table gives ``(images, labels)``), ``"codes"``, ``"image:COLUMN"`` per image column,
    ``"text:COLUMN"`` per text column, ``"labels"``, ``"ids"``.

    Attributes: ``parts``, ``features``, ``feature_names``, ``feature_dim``, ``categorical_columns`` (None
    when not asked for), ``vocabularies``, ``category_sizes``, ``date_columns``, ``dates``,
    ``image_columns``, ``image_size``, ``text_columns``, ``label``, ``label_map``, ``classes`` (values in
    index order, or None), ``rows``.
    """

    def __init__(self, data: CleanData, features=None, label=None, batch_size=1024, label_map=None, ids=False,
                 fill_missing=None, categorical_columns=None, dates=None, date_columns=None, image_columns=None,
                 text_columns=None, image_size=None, image_root=None):
        super().__init__()
        self.shards = data.shards
        kinds = kinds_of(data.manifest)
        self.image_columns = media.choose_images(data.manifest, image_columns)
        self.images = media.image_columns(data, self.image_columns, image_size, image_root)
        self.image_size = self.images[0].size if self.images else None
        self.text_columns = media.choose_texts(data.manifest, text_columns)
        self.dates, self.date_columns = choose_dates(data.manifest, dates, date_columns)
        media_only = features is None and not data.feature_columns and bool(self.image_columns or self.text_columns)
        self._with_features = not media_only or bool(self.date_columns)
        self.features = [] if media_only else _feature_list(data, features)
        check_feature_kinds(self.features, kinds)
        self.categorical_columns = choose_categorical(data.manifest, data.feature_columns, categorical_columns)
        vocabularies = vocabularies_of(data.manifest)
        self.vocabularies = {c: vocabularies[c] for c in self.categorical_columns or []}
        self.category_sizes = [self.vocabularies[c].cardinality for c in self.categorical_columns or []]
        self.label = label or data.label_column
        if not self.label:
            raise ValueError("no label column: the manifest names none, pass label=")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.id_column = data.id_column if ids else None
        if ids and not self.id_column:
            raise ValueError("ids=True but the manifest names no id column")
        self._record_ids = data.id_column if (ids or self.images) else None  # an unreadable image names its id
        schema = self._schema(data.manifest)
        wanted = [*self.features, *(self.categorical_columns or []), *self.date_columns, *self.image_columns,
                  *self.text_columns, self.label]
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise ValueError(f"column(s) {missing} are not in the clean data; columns are {schema.names}")
        first = self.shards[0] if self.shards else None
        self.widths = tuple(feature_width(schema.field(c), first) for c in self.features)
        self.fill_missing = fill_values(fill_missing, self.features + self.date_columns)
        parts = ["year", "month", "day"] if self.dates == "parts" else ["days"]
        self.feature_names = [f"{c}[{i}]" if w > 1 else c for c, w in zip(self.features, self.widths)
                              for i in range(w)] + [f"{c}.{p}" for c in self.date_columns for p in parts]
        self.feature_dim = len(self.feature_names)
        self.parts = (["features"] if self._with_features else []) + (["codes"] if self.categorical_columns
                                                                      is not None else []) \
            + [f"image:{c}" for c in self.image_columns] + [f"text:{c}" for c in self.text_columns] + ["labels"] \
            + (["ids"] if self.id_column else [])
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

        X, codes, y, idv, *columns = batch
        X = X if X.flags.writeable else X.copy()  # arrays straight from Arrow are read-only
        y = y if y.flags.writeable else y.copy()
        out = ((torch.from_numpy(X),) if self._with_features else ()) \
            + ((torch.from_numpy(codes),) if codes is not None else ())
        out += tuple(torch.from_numpy(image.tensor(values, idv)) for image, values in zip(self.images, columns))
        out += tuple(media.texts(values) for values in columns[len(self.images):])
        out += (torch.from_numpy(y),)
        return out + (idv,) if self.id_column else out

    def _segments(self, start: int, stop: int):
        """(X, codes, y, ids, *image and text values) for the global rows [start, stop), one row group (or part
        of one) at a time; image and text values stay Arrow arrays, decoded a batch at a time (``_tensors``).

        Each shard the range touches is read once into memory and verified against the manifest
        (:func:`_read_verified`) before any of its row groups is parsed, in whichever process runs
        this (a DataLoader worker verifies what it reads itself); only one shard is held at a time.
        """
        media_columns = [*self.image_columns, *self.text_columns]
        columns = list(dict.fromkeys([*self.features, *(self.categorical_columns or []), *self.date_columns,
                                      *media_columns, self.label] + ([self._record_ids] if self._record_ids else [])))
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
            blocks = [to_float_matrix(table.column(c), c, w, self.fill_missing.get(c))
                      for c, w in zip(self.features, self.widths)]
            blocks += [self._date_block(table.column(c), c) for c in self.date_columns]
            X = np.concatenate(blocks, axis=1) if blocks else np.zeros((table.num_rows, 0), dtype=np.float32)
            codes = None
            if self.categorical_columns is not None:
                codes = np.zeros((table.num_rows, len(self.categorical_columns)), dtype=np.int64)
                for j, c in enumerate(self.categorical_columns):
                    codes[:, j] = encode(table.column(c), self.vocabularies[c])
            y = _labels_to_int(table.column(self.label), self.label, self.label_map)
            idv = table.column(self._record_ids).to_pylist() if self._record_ids else None
            yield (np.ascontiguousarray(X, dtype=np.float32), codes, y, idv,
                   *(table.column(c).combine_chunks() for c in media_columns))

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
        return finite_float32(values, name)


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
    """The first ``n`` rows of the buffered (X, codes, y, ids, *Arrow columns) parts, and what is left (codes
    and ids may be None)."""
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
        if isinstance(items[0], pa.Array):
            return items[0] if len(items) == 1 else pa.concat_arrays(items)
        return np.ascontiguousarray(items[0] if len(items) == 1 else np.concatenate(items))

    left = sum(len(t[2]) for t in rest)
    return tuple(join(i) for i in range(len(buffer[0]))), rest, left
