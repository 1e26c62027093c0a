"""Column roles, record ids and Arrow batch <-> numpy helpers.

Every record carries an id (the user's id column, or a generated
``<file relative to the input root>:<row number>``, stable across reruns on the
same input) and a 64-bit *key*, a hash of that id. Keys drive every
record-level random choice (sampling priority, cross-fitting folds), so those
choices are deterministic, independent of how a runner splits or orders the
data, and reproducible from the seed.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.value_types import EXACT_FLOAT_INT, parse_numbers

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


@dataclass
class Extracted:
    """What the detectors see of one batch: valid rows only."""

    X: np.ndarray  # (n_valid, d) float64
    labels: np.ndarray  # (n_valid,) object array of label strings
    keys: np.ndarray  # (n_valid,) uint64
    ids: np.ndarray  # (n_valid,) object array of id strings
    valid: np.ndarray  # (n_rows,) bool mask into the batch
    labels_all: np.ndarray  # (n_rows,) label strings of every row, None where null
    issues: list[tuple[str, np.ndarray, dict]] = field(default_factory=list)
    """(reason code, row mask over the whole batch, evidence) for rows that failed checks."""
    per_row_issues: dict[int, list[dict]] = field(default_factory=dict)
    """Row index -> extra issues with row-specific evidence (for example the unparsable value)."""
    embedding: np.ndarray | None = None
    """(n_valid, e) precomputed embeddings, when an embedding column is configured."""


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
_WIDE_INTEGERS = (pa.int64(), pa.uint64())
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


def extract(table: pa.Table, features: list[FeatureColumn], label_column: str, id_output: str,
            embedding: FeatureColumn | None = None,
            extra_issues: list[tuple[str, np.ndarray, dict]] | None = None,
            missing: str = "report") -> Extracted:
    """Pull the feature matrix, labels, ids and keys out of a batch and check every row.

    Rows with a null label, an infinite / unparsable feature value, a feature value
    float32 cannot hold (``invalid:out_of_range``: the training job would read it as
    inf), a null, NaN or wrong-length vector feature or a null id are marked invalid
    with a reason; they are quarantined and never reach a detector.

    A missing (null or NaN) value in a scalar feature is not poison: with ``missing="report"``
    (the default) its row stays valid, carries a ``missing:COL`` reason with action ``report``,
    and reaches the detectors with the cell left NaN, to be filled (:func:`fill_missing`) with the
    sample's median. ``missing="quarantine"`` makes it invalid (``invalid:null:COL`` /
    ``invalid:nan:COL``), for trainers that cannot take nulls.
    """
    n = table.num_rows
    if embedding is not None:
        features = list(features) + [embedding]  # checked like a feature, split off below
    d = sum(fc.width for fc in features)
    # Filled feature by feature as rows of XT (contiguous writes and checks: filling the columns of an
    # (n, d) array in place took 1.2 s per million rows of 32 features, this 0.2 s), transposed once below.
    XT = np.empty((d, n), dtype=np.float64)
    issues: list[tuple[str, np.ndarray, dict]] = []
    invalid = np.zeros(n, dtype=bool)
    unparsed: dict[int, list[dict]] = {}  # row -> issues of text that is no number, with the text
    start = 0
    for fc in features:
        col = table.column(fc.name).combine_chunks()
        null = (
            np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            if col.null_count
            else np.zeros(n, dtype=bool)
        )
        block = XT[start : start + fc.width]  # (width, n)
        start += fc.width
        if fc.is_list:
            values, bad_len = _list_block(col, fc.width, null)
            block[:] = values.T
            if bad_len.any():
                issues.append((f"invalid:wrong_length:{fc.name}", bad_len, {"column": fc.name, "expected": fc.width}))
                invalid |= bad_len
        elif fc.coerce and not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            # Text kept as written in the shards and parsed here; a missing-value word (NA, None) is a
            # missing value, other text that is no number makes its row invalid.
            block[0], unparsable, _ = parse_numbers(col)
            words = missing_words(col) if unparsable.any() else None
            if words is not None and words.any():
                block[0, words] = np.nan
                unparsable &= ~words
            inexact = inexact_integer_text(col, block[0])
            if inexact is not None:
                    issues.append((f"invalid:inexact:{fc.name}", inexact,
                                   {"column": fc.name, "limit": EXACT_FLOAT_INT,
                                    "note": "an integer beyond +-2^53, which a float64 feature cannot hold exactly"}))
                    invalid |= inexact
                    block[0, inexact] = 0.0
            if unparsable.any():  # per row, with the text, as a read issue would be
                text = pc.cast(col, pa.string())
                for i in np.flatnonzero(unparsable):
                    unparsed.setdefault(int(i), []).append(
                        {"code": f"invalid:non_numeric:{fc.name}", "column": fc.name, "value": text[int(i)].as_py()})
                invalid |= unparsable
                block[0, unparsable] = 0.0
        else:
            block[0] = col.to_numpy(zero_copy_only=False)
            if col.type in _WIDE_INTEGERS and len(col) > col.null_count:
                inexact = beyond_float(col)
                if inexact.any():
                    issues.append((f"invalid:inexact:{fc.name}", inexact,
                                   {"column": fc.name, "limit": EXACT_FLOAT_INT,
                                    "note": "an integer beyond +-2^53, which a float64 feature cannot hold exactly"}))
                    invalid |= inexact
                    block[0, inexact] = 0.0
        optional = missing == "report" and not fc.is_list
        if null.any():
            if optional:
                block[:, null] = np.nan
            else:
                issues.append((f"invalid:null:{fc.name}", null, {"column": fc.name}))
                invalid |= null
                block[:, null] = 0.0
        finite = np.isfinite(block)
        if not finite.all():
            nonfinite = ~finite
            nan_rows = np.isnan(block).any(axis=0)
            inf_rows = (nonfinite & ~np.isnan(block)).any(axis=0)
            if nan_rows.any() and optional:
                issues.append((f"missing:{fc.name}", nan_rows,
                               {"column": fc.name, "action": "report",
                                "note": "missing value; the detectors judged the row with the sample's median"}))
            elif nan_rows.any():
                issues.append((f"invalid:nan:{fc.name}", nan_rows, {"column": fc.name}))
                invalid |= nan_rows
            if inf_rows.any():
                issues.append((f"invalid:inf:{fc.name}", inf_rows, {"column": fc.name}))
                invalid |= inf_rows
        with np.errstate(invalid="ignore"):
            beyond = (np.abs(block) > FLOAT32_MAX) & finite
        if beyond.any():
            out_rows = beyond.any(axis=0)
            issues.append((f"invalid:out_of_range:{fc.name}", out_rows, {"column": fc.name, "limit": FLOAT32_MAX}))
            invalid |= out_rows
    X = np.ascontiguousarray(XT.T)
    del XT

    labels = label_strings(table.column(label_column))
    null_label = pd.isnull(labels)
    if null_label.any():
        issues.append((f"invalid:null:{label_column}", null_label, {"column": label_column}))
        invalid |= null_label

    ids_arr = table.column(id_output).combine_chunks()
    null_id = np.asarray(ids_arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if null_id.any():
        issues.append((f"invalid:null:{id_output}", null_id, {"column": id_output}))
        invalid |= null_id

    per_row: dict[int, list[dict]] = {}
    if READ_ISSUE in table.column_names:
        raw = table.column(READ_ISSUE).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(pd.notna(raw)):
            per_row[int(i)] = [json.loads(line) for line in raw[i].split("\n")]
            invalid[i] = True
        # A value that could not be cast arrives as null; the read issue explains it, so drop the bare null reason.
        if per_row:
            keep = []
            for code, mask, evidence in issues:
                if code.startswith(("invalid:null:", "missing:")):
                    mask = mask.copy()
                    column = evidence.get("column")
                    for i, entries in per_row.items():
                        if any(e.get("column") == column for e in entries):
                            mask[i] = False
                    if not mask.any():
                        continue
                keep.append((code, mask, evidence))
            issues = keep

    for i, entries in unparsed.items():
        per_row.setdefault(i, []).extend(entries)

    for code, mask, evidence in extra_issues or ():  # e.g. failed row-level expectations
        issues.append((code, mask, evidence))
        if not report_only(evidence):  # a non-critical expectation only reports
            invalid |= mask
    valid = ~invalid
    if invalid.any():
        X = X[valid]
    keys = table.column(KEY_COLUMN).to_numpy().astype(np.uint64)[valid]
    ids = pc.cast(ids_arr, pa.string()).to_numpy(zero_copy_only=False)[valid]
    E = None
    if embedding is not None:
        X, E = X[:, : d - embedding.width], np.ascontiguousarray(X[:, d - embedding.width :])
    return Extracted(
        embedding=E,
        X=np.ascontiguousarray(X, dtype=np.float64),
        labels=labels[valid],
        keys=keys,
        ids=ids,
        valid=valid,
        labels_all=labels,
        issues=issues,
        per_row_issues=per_row,
    )


def _list_block(col: pa.Array, width: int, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(col)
    if pa.types.is_fixed_size_list(col.type):
        flat = col.flatten() if col.offset == 0 and not col.null_count else None
        if flat is not None and len(flat) == n * width:
            values = flat.to_numpy(zero_copy_only=False).astype(np.float64)
            return values.reshape(n, width), np.zeros(n, dtype=bool)
    lengths = pc.list_value_length(col).fill_null(width).to_numpy(zero_copy_only=False)
    bad_len = (lengths != width) & ~null
    out = np.zeros((n, width), dtype=np.float64)
    good = ~bad_len & ~null
    if good.any():
        sub = col.filter(pa.array(good))
        values = pc.list_flatten(sub).to_numpy(zero_copy_only=False).astype(np.float64)
        out[good] = values.reshape(-1, width)
    return out, bad_len
