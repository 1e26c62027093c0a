"""Reading a table's columns into a :class:`~sanitizer.data.batch.Batch`, checking every row.

Each feature column becomes float64 values of its kind (``numeric``; a configured embedding column,
``embedding``); a row whose value no detector can judge (a null label or id, an infinite or
unparsable number, a wrong-length vector) is marked invalid with its reason and never reaches a
detector. The reasons travel with the batch (:class:`~sanitizer.data.batch.RowChecks`).

Columns of other kinds come with the encoders the plan gives (``encoders``: each has a ``name``, a
``kind`` and ``encode(column) -> (n,) values``, see :mod:`sanitizer.representations`): categorical codes,
date days, texts and decoded images, one matrix column per input column. Only an image that cannot be
read (an encoder that is ``checked``: ``encode_checked`` names each such row's problem) makes its row
invalid, with reason ``invalid:unreadable:COL``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.batch import (
    EMBEDDING, FLOAT32_MAX, KEY_COLUMN, NUMERIC, READ_ISSUE, Batch, FeatureColumn, RowChecks, beyond_float,
    inexact_integer_text, label_strings, missing_words, report_only,
)
from sanitizer.data.value_types import EXACT_FLOAT_INT, parse_numbers

_WIDE_INTEGERS = (pa.int64(), pa.uint64())


def extract(table: pa.Table, features: list[FeatureColumn], label_column: str, id_output: str,
            embedding: FeatureColumn | None = None,
            extra_issues: list[tuple[str, np.ndarray, dict]] | None = None,
            missing: str = "report", encoders: Sequence = ()) -> Batch:
    """The :class:`~sanitizer.data.batch.Batch` of a table's valid rows, with what the check of every row found.

    Rows with a null label, an infinite / unparsable feature value, a feature value
    float32 cannot hold (``invalid:out_of_range``: the training job would read it as
    inf), a null, NaN or wrong-length vector feature or a null id are marked invalid
    with a reason; they are quarantined and never reach a detector.

    A missing (null or NaN) value in a scalar feature is not poison: with ``missing="report"``
    (the default) its row stays valid, carries a ``missing:COL`` reason with action ``report``,
    and reaches the detectors with the cell left NaN, to be filled (:meth:`Batch.filled`) with the
    sample's median. ``missing="quarantine"`` makes it invalid (``invalid:null:COL`` /
    ``invalid:nan:COL``), for trainers that cannot take nulls.

    ``encoders`` fill one feature kind each (``encoder.kind``: :data:`~sanitizer.data.batch.CATEGORICAL`,
    :data:`~sanitizer.data.batch.DATE`), their columns in the order given, named in ``Batch.columns``.
    """
    n = table.num_rows
    names = tuple(name for fc in features for name in fc.names())
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

    encoded_all: dict[int, np.ndarray] = {}
    for e, encoder in enumerate(encoders):  # an image that cannot be read makes its row invalid
        if getattr(encoder, "checked", False):
            encoded_all[e], problems = encoder.encode_checked(table.column(encoder.name))
            for i, problem in problems.items():
                per_row.setdefault(int(i), []).append(
                    {"code": f"invalid:unreadable:{encoder.name}", "column": encoder.name, "problem": problem})
                invalid[int(i)] = True

    for code, mask, evidence in extra_issues or ():  # e.g. failed row-level expectations
        issues.append((code, mask, evidence))
        if not report_only(evidence):  # a non-critical expectation only reports
            invalid |= mask
    valid = ~invalid
    if invalid.any():
        X = X[valid]
    keys = table.column(KEY_COLUMN).to_numpy().astype(np.uint64)[valid]
    ids = pc.cast(ids_arr, pa.string()).to_numpy(zero_copy_only=False)[valid]
    kinds = {NUMERIC: X}
    if embedding is not None:
        kinds = {NUMERIC: X[:, : d - embedding.width], EMBEDDING: np.ascontiguousarray(X[:, d - embedding.width :])}
    kinds[NUMERIC] = np.ascontiguousarray(kinds[NUMERIC], dtype=np.float64)
    columns: dict[str, list[str]] = {}
    encoded: dict[str, list[np.ndarray]] = {}
    for e, encoder in enumerate(encoders):
        values = encoded_all[e] if e in encoded_all else encoder.encode(table.column(encoder.name))
        columns.setdefault(encoder.kind, []).append(encoder.name)
        encoded.setdefault(encoder.kind, []).append(values[valid] if invalid.any() else values)
    for kind, parts in encoded.items():
        kinds[kind] = np.stack(parts, axis=1)  # (n, k) or, for images, (n, k, size, size, 3); C-contiguous
    return Batch(
        features=kinds,
        columns=columns,
        labels=labels[valid],
        keys=keys,
        ids=ids,
        feature_names=names,
        checks=RowChecks(valid=valid, labels_all=labels, issues=tuple(issues), per_row_issues=per_row),
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
