"""Feature values as the torch stream hands them out: every feature column as float32, refusing what a
float32 tensor cannot hold (a missing value nobody said how to fill, NaN or infinity, a number beyond
float32's range, text that is not a number) with an error naming the column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.training.shards import ManifestError, Shard, _verified_parquet


def feature_width(field: pa.Field, shard: Shard | None) -> int:
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


def fill_values(fill, features: list[str]) -> dict[str, float]:
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


def to_float_matrix(column: pa.ChunkedArray | pa.Array, name: str, width: int,
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
        return finite_float32(values.to_numpy(zero_copy_only=False), name).reshape(n, width)
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
    return finite_float32(values, name).reshape(n, 1)


FLOAT32_MAX = float(np.finfo(np.float32).max)
_MISSING_WORDS = pa.array(["NA", "N/A", "n/a", "#N/A", "NULL", "null", "None", "none", "nil", ""])
"""Text a feature stored as text holds for a missing value (the same words as ``records.MISSING_WORDS``,
which this module cannot import: the training side imports no Beam)."""


def finite_float32(values: np.ndarray, name: str) -> np.ndarray:
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
