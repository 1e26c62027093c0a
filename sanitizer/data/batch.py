"""The batch type, column roles, record ids and keys, and Arrow <-> numpy helpers.

:class:`Batch` carries rows from reading (:func:`sanitizer.data.extract.extract`) through the
bounded sample to the detectors' fit and score: features by kind, labels, ids, keys, and what
the row checks found.

Every record carries an id (the user's id column, or a generated
``<file relative to the input root>:<row number>``, stable across reruns on the
same input) and a 64-bit *key*, a hash of that id. Keys drive every
record-level random choice (sampling priority, cross-fitting folds), so those
choices are deterministic, independent of how a runner splits or orders the
data, and reproducible from the seed.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.value_types import EXACT_FLOAT_INT

ID_COLUMN = "sanitizer_id"
KEY_COLUMN = "__sanitizer_key"
INTERNAL_PREFIX = "__sanitizer_"
READ_ISSUE = "__sanitizer_read_issue"  # what reading found wrong with a row's values (JSON lines), set by the reader
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest magnitude a feature may have: the training job reads features as float32, where a
larger finite value (1e308, -3.5e38) becomes inf. Such a row is quarantined as ``invalid:out_of_range``."""

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-mixed, platform-independent uint64 -> uint64 hash."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def in_sorted(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """(n,) bool: which ``values`` are in ``sorted_unique`` (sorted, no repeats), by binary search: unlike
    ``np.isin``, nothing of the size of ``sorted_unique`` is sorted again at each call."""
    if len(sorted_unique) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_unique, values), len(sorted_unique) - 1)
    return sorted_unique[at] == values


def salted(keys: np.ndarray, salt: int | str) -> np.ndarray:
    """Keys re-hashed with a salt (a seed, or a purpose such as "fold")."""
    if isinstance(salt, str):
        salt = int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")
    return mix64(np.asarray(keys, dtype=np.uint64) ^ np.uint64(salt % (1 << 64)))


def uniform01(keys: np.ndarray, salt: int | str) -> np.ndarray:
    """A deterministic uniform [0, 1) draw per key."""
    return (salted(keys, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def string_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def keys_for_ids(ids: pa.Array) -> np.ndarray:
    """uint64 keys for user-supplied ids (stable across processes and runs)."""
    if pa.types.is_integer(ids.type):
        values = ids.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
        return mix64(values)
    values = pc.cast(ids, pa.string()).fill_null("").to_numpy(zero_copy_only=False)
    return pd.util.hash_array(values.astype(object), categorize=False).astype(np.uint64)


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    width: int  # 1 for a scalar column, the list size for a fixed-size list column
    is_list: bool = False
    coerce: bool = False  # a string column holding numbers: parse, quarantine what does not parse

    def names(self) -> list[str]:
        return [self.name] if not self.is_list else [f"{self.name}[{i}]" for i in range(self.width)]


NUMERIC = "numeric"
"""The feature kind of numeric columns: scalar and fixed-length list columns, as float64, NaN where a value is missing."""
EMBEDDING = "embedding"
"""The feature kind of a precomputed embedding column (one fixed-length float vector per row)."""
CATEGORICAL = "categorical"
"""The feature kind of categorical columns (and booleans stored as text): int32 codes by each column's
vocabulary, one matrix column per input column (:mod:`sanitizer.representations.categorical`)."""
DATE = "date"
"""The feature kind of date and timestamp columns: days since 1970-01-01 as float64, NaN where a value is
missing, one matrix column per input column (:mod:`sanitizer.representations.dates`)."""
IMAGE = "image"
"""The feature kind of image columns: uint8 RGB pixels, decoded and resized in the worker, (n, k, size, size, 3)
for k image columns named by ``columns[IMAGE]`` (:mod:`sanitizer.representations.media_columns`)."""
TEXT = "text"
"""The feature kind of text columns: (n, k) object array of ``str`` cut to a bounded length, None where
missing, named by ``columns[TEXT]``."""
DTYPES = {CATEGORICAL: np.dtype(np.int32), IMAGE: np.dtype(np.uint8), TEXT: np.dtype(object)}
"""The dtype of a feature kind's matrix; float64 for the kinds not named."""
MEDIA = (IMAGE, TEXT)
"""The kinds the detectors judge through a representation's vectors (:mod:`sanitizer.beam.media`)."""


@dataclass(frozen=True)
class RowChecks:
    """What the check of every row of a table found (:func:`sanitizer.data.extract.extract`); indexed by
    the table's rows, where a :class:`Batch`'s other fields hold its valid rows only."""

    valid: np.ndarray  # (n_rows,) bool: the rows the batch holds
    labels_all: np.ndarray  # (n_rows,) label strings of every row, None where null
    issues: tuple[tuple[str, np.ndarray, dict], ...] = ()
    """(reason code, row mask over the whole table, evidence) for rows that failed checks."""
    per_row_issues: dict[int, list[dict]] = field(default_factory=dict)
    """Row index -> extra issues with row-specific evidence (for example the unparsable value)."""

    @property
    def n_rows(self) -> int:
        return len(self.valid)


@dataclass(frozen=True, init=False, eq=False)
class Batch:
    """Rows as the detectors see them, from reading to scoring: every column role of each row.

    ``features`` maps a feature kind to its (n, width) representation: :data:`NUMERIC` (float64, the
    numeric feature columns, named by ``feature_names``); when configured, :data:`EMBEDDING`; and when
    the input has such columns, :data:`CATEGORICAL` (int32 codes) and :data:`DATE` (float64 days), whose
    matrix columns are named, one input column each, by ``columns[kind]``. A kind with no columns has no
    key. A new column kind is a new key, not a new field. ``labels``, ``ids`` and ``keys`` (the record
    keys, uint64 hashes of the ids) hold one value per row. ``checks`` is set on a batch read from a
    table (:func:`sanitizer.data.extract.extract`): what the row checks found, over all of the
    table's rows; a batch derived from some of the rows (:meth:`take`) has none.

    Immutable: derive a new batch with :meth:`take`, :meth:`filled` or ``dataclasses.replace``; the
    arrays are shared between batches and never written to.

    Built positionally, ``Batch(X, labels, keys, ids, feature_names, embedding)`` is the batch of
    numeric features ``X`` (and an embedding); ``Batch(features=..., labels=..., ...)`` gives the kinds.
    """

    features: Mapping[str, np.ndarray]
    labels: np.ndarray  # (n,) object array of class strings
    keys: np.ndarray  # (n,) uint64 hashes of record ids
    ids: np.ndarray  # (n,) object array of record ids
    feature_names: tuple[str, ...]  # the NUMERIC columns (list columns as name[i])
    checks: RowChecks | None
    columns: Mapping[str, tuple[str, ...]]  # kind -> the input column of each of its matrix columns (CATEGORICAL, DATE)

    def __init__(self, X: np.ndarray | None = None, labels: np.ndarray | None = None, keys: np.ndarray | None = None,
                 ids: np.ndarray | None = None, feature_names: tuple[str, ...] = (),
                 embedding: np.ndarray | None = None, *, features: Mapping[str, np.ndarray] | None = None,
                 checks: RowChecks | None = None, columns: Mapping[str, Sequence[str]] | None = None):
        if features is None:
            if X is None:
                raise TypeError("Batch needs X (the numeric features) or features (kind -> array)")
            features = {NUMERIC: X} if embedding is None else {NUMERIC: X, EMBEDDING: embedding}
        elif X is not None or embedding is not None:
            raise TypeError("Batch takes either X (and embedding) or features, not both")
        if labels is None or keys is None or ids is None:
            raise TypeError("Batch needs labels, keys and ids")
        columns = {kind: tuple(names) for kind, names in (columns or {}).items()}
        for kind, names in columns.items():
            width = features[kind].shape[1] if kind in features else None
            if width != len(names):
                raise ValueError(f"Batch columns[{kind!r}] names {len(names)} columns, but features[{kind!r}] "
                                 f"has {'none' if width is None else width}")
        for name, value in (("features", dict(features)), ("labels", labels), ("keys", keys), ("ids", ids),
                            ("feature_names", tuple(feature_names)), ("checks", checks), ("columns", columns)):
            object.__setattr__(self, name, value)

    @property
    def X(self) -> np.ndarray:
        """(n, d) float64: the numeric features."""
        return self.features[NUMERIC]

    @property
    def embedding(self) -> np.ndarray | None:
        """(n, e) from a precomputed embedding column, when configured."""
        return self.features.get(EMBEDDING)

    @property
    def categorical(self) -> np.ndarray | None:
        """(n, k) int32 codes of the categorical columns (named by ``columns[CATEGORICAL]``), when any."""
        return self.features.get(CATEGORICAL)

    @property
    def dates(self) -> np.ndarray | None:
        """(n, d) float64 days since 1970-01-01 of the date columns (named by ``columns[DATE]``), when any."""
        return self.features.get(DATE)

    @property
    def n(self) -> int:
        return len(self.keys)

    def take(self, rows) -> "Batch":
        """The batch of ``rows`` (indices, a mask or a slice), every feature kind and role kept; no
        ``checks``, which describe the whole table."""
        return Batch(features={kind: values[rows] for kind, values in self.features.items()},
                     labels=self.labels[rows], keys=self.keys[rows], ids=self.ids[rows],
                     feature_names=self.feature_names, columns=self.columns)

    def filled(self, fill: np.ndarray | None) -> "Batch":
        """The batch with its missing numeric values set to ``fill`` (see :func:`fill_missing`)."""
        X = fill_missing(self.X, fill)
        return self if X is self.X else replace(self, features={**self.features, NUMERIC: X})

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        """The rows of ``parts`` one after another (at least one part; the first's names; no ``checks``)."""
        first = parts[0]
        return Batch(features={kind: np.concatenate([p.features[kind] for p in parts]) for kind in first.features},
                     labels=np.concatenate([p.labels for p in parts]), keys=np.concatenate([p.keys for p in parts]),
                     ids=np.concatenate([p.ids for p in parts]), feature_names=first.feature_names,
                     columns=first.columns)

    @staticmethod
    def take_from(parts: Sequence[Batch], rows: np.ndarray) -> Batch:
        """The batch of ``rows`` (indices into the rows of ``parts`` one after another, at least one part;
        the first's names; no ``checks``): :meth:`concat` then :meth:`take`, with one copy of the rows
        taken instead of one of every row and another of those taken."""
        first = parts[0]
        rows = np.asarray(rows, dtype=np.int64)
        ends = np.cumsum([p.n for p in parts])
        part = np.searchsorted(ends, rows, side="right")  # the part each row is in, and where in it
        local = rows - (ends - np.array([p.n for p in parts]))[part]

        def gather(arrays: list[np.ndarray]) -> np.ndarray:
            out = np.empty((len(rows), *arrays[0].shape[1:]), dtype=arrays[0].dtype)
            for i, values in enumerate(arrays):
                at = np.flatnonzero(part == i)
                if len(at):
                    out[at] = values[local[at]]
            return out

        return Batch(features={kind: gather([p.features[kind] for p in parts]) for kind in first.features},
                     labels=gather([p.labels for p in parts]), keys=gather([p.keys for p in parts]),
                     ids=gather([p.ids for p in parts]), feature_names=first.feature_names, columns=first.columns)

    @staticmethod
    def empty(widths: Mapping[str, int | tuple[int, ...]], feature_names: tuple[str, ...] = (),
              columns: Mapping[str, Sequence[str]] | None = None) -> "Batch":
        """A batch of no rows with these feature kinds and widths (a row's shape for an image kind; each
        kind's dtype, :data:`DTYPES`)."""
        return Batch(features={kind: np.zeros((0, *(width if isinstance(width, tuple) else (width,))),
                                              dtype=DTYPES.get(kind, np.float64))
                               for kind, width in widths.items()},
                     labels=np.zeros(0, dtype=object), keys=np.zeros(0, np.uint64), ids=np.zeros(0, dtype=object),
                     feature_names=feature_names, columns=columns)


def id_strings(column) -> list:
    """Record ids as strings, the form review decisions and the report name records by."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return pc.cast(column, pa.string()).to_pylist()


def label_strings(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Labels as strings (class keys), None where null or NaN.

    Whole-number floats read as integers ("3", not "3.0"), so a label column that
    is int in one shard and float in another names the same classes.
    Computed through a dictionary encoding: only the distinct labels become
    Python strings, the rows share them.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    values = encoded.dictionary
    missing = np.zeros(len(values), dtype=bool)
    names = np.empty(len(values) + 1, dtype=object)
    if pa.types.is_floating(values.type):
        numbers = values.to_numpy(zero_copy_only=False).astype(np.float64)
        missing = ~np.isfinite(numbers)
        names[:-1] = pc.cast(values, pa.string()).to_numpy(zero_copy_only=False)
        # Whole numbers within int64's range read as integers; 1e308 keeps its own name (cast to int64
        # it would wrap around and share one with every other huge label).
        whole = ~missing & (np.abs(np.where(missing, 0, numbers)) < 2.0**63)
        whole &= np.where(whole, numbers, 0) == np.round(np.where(whole, numbers, 0))
        if whole.any():
            ints = pa.array(numbers[whole].astype(np.int64))
            names[:-1][whole] = pc.cast(ints, pa.string()).to_numpy(zero_copy_only=False)
    else:
        names[:-1] = pc.cast(values, pa.string()).to_numpy(zero_copy_only=False)
    names[:-1][missing] = None
    names[-1] = None
    index = encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
    return names[index]


MISSING_WORDS = ("NA", "N/A", "n/a", "#N/A", "NULL", "null", "None", "none", "nil", "")
"""Text a numeric feature stored as text reads as a missing value (the shards keep the text as
written; ``training.torch`` reads the same words as missing)."""
_MISSING_WORDS = pa.array(MISSING_WORDS)
_INTEGER_TEXT = r"^[-+]?[0-9]+$"


def missing_words(column: pa.Array) -> np.ndarray:
    """Per value of a text column: whether it is a missing-value word (:data:`MISSING_WORDS`)."""
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    return np.asarray(pc.is_in(text, value_set=_MISSING_WORDS).fill_null(False).to_numpy(zero_copy_only=False),
                      dtype=bool)


def inexact_integer_text(column: pa.Array, parsed: np.ndarray) -> np.ndarray | None:
    """Per value of a text column and its parsed float64 values: whether it is an integer written
    beyond +-2^53 that float64 rounds (``-9007199254740993``); None when there is none."""
    with np.errstate(invalid="ignore"):
        huge = np.abs(parsed) >= EXACT_FLOAT_INT
    if not huge.any():
        return None
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    literal = pc.match_substring_regex(text, _INTEGER_TEXT)
    inexact = huge & np.asarray(literal.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    for i in np.flatnonzero(inexact):  # only such huge values: compare the integers themselves
        inexact[i] = int(text[int(i)].as_py()) != int(parsed[i])
    return inexact if inexact.any() else None


def beyond_float(column: pa.Array) -> np.ndarray:
    """Per value of an integer column: whether its magnitude exceeds 2^53 (float64 would round it)."""
    lo, hi = pc.min_max(column).values()
    if lo.as_py() is None or (-EXACT_FLOAT_INT <= lo.as_py() and hi.as_py() <= EXACT_FLOAT_INT):
        return np.zeros(len(column), dtype=bool)
    big = pc.greater(column, pa.scalar(EXACT_FLOAT_INT, column.type))
    if pa.types.is_signed_integer(column.type):
        big = pc.or_(big, pc.less(column, pa.scalar(-EXACT_FLOAT_INT, column.type)))
    return np.asarray(big.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


MISSING_ACTIONS = ("report", "quarantine")
"""What a missing (null or NaN) value in a scalar feature does to its row (config ``missing_features``)."""


def report_only(evidence: dict) -> bool:
    """An issue that annotates its row and keeps it clean: a missing optional value, or a row-level
    expectation whose Great Expectations severity is warning or info."""
    return evidence.get("action") == "report" or evidence.get("severity") in ("warning", "info")


def fill_missing(X: np.ndarray, fill: np.ndarray | None) -> np.ndarray:
    """``X`` with its NaN cells (missing values kept under ``missing_features: report``) set to ``fill``,
    the per-feature medians of the sample; a copy only when there is something to fill."""
    if fill is None or X.size == 0:
        return X
    missing = np.isnan(X)
    if not missing.any():
        return X
    return np.where(missing, fill[np.newaxis, :], X)


def column_medians(X: np.ndarray) -> np.ndarray:
    """Per-feature median of the present (non-NaN) values; 0 for a feature with none."""
    if X.size == 0:
        return np.zeros(X.shape[1] if X.ndim == 2 else 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": such a feature gets 0
        return np.nan_to_num(np.nanmedian(X, axis=0), nan=0.0)
