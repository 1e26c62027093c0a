"""Row content hashes: what makes two records "the same" for the ``duplicates`` detector.

A record's content is every original column but its id and its label: two rows that agree there are copies
(with the same label) or a label conflict (with different ones). Each column is hashed on its own, value by
value and vectorised (numbers by their value, so ``1.0`` in two shards is one value; ``-0.0`` is ``0.0``;
every null and NaN is one value; text and bytes by their bytes; lists by their elements and positions;
structs, such as the Hugging Face ``{bytes, path}`` image layout, by their fields), and the column hashes are
combined in column-name order into two independent 64-bit hashes: a 128-bit content hash, so at a billion
rows the chance of two different rows colliding is about 10^-21.

The per-column hashes also feed the chance model (:mod:`sanitizer.detectors.duplicates.chance`): how likely
a row's values are to repeat by chance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.data.batch import ID_COLUMN, INTERNAL_PREFIX, mix64, string_hash

KEYS = ("sanitizer-dup-a1", "sanitizer-dup-b2")
"""pandas ``hash_array`` keys (16 characters) of the two independent hash families."""
_NULL = np.uint64(0x9E3779B97F4A7C15)
_POSITION = np.uint64(0xD1B54A32D192ED03)


def content_columns(schema: pa.Schema, id_column: str | None, label_column: str | None) -> list[str]:
    """The columns that make a record's content, in the schema's order (related columns sit together, which
    the chance estimate's cuts read: :func:`sanitizer.detectors.duplicates.chance.cuts`): every input column
    but the id and the label (and the sanitizer's own)."""
    skip = {id_column, label_column, ID_COLUMN}
    return [n for n in schema.names if n not in skip and not n.startswith((INTERNAL_PREFIX, "sanitizer_"))]


_FAMILY = {key: np.uint64(string_hash(key)) for key in KEYS}
_NONINTEGRAL = np.uint64(0xC2B2AE3D27D4EB4F)
_ROW_STEP = np.uint64(0x100000001B3)


def _numeric_words(array: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """(words, nulls) of a numeric, boolean or temporal column: each value as one uint64 word, equal words
    for equal values (``1.0`` in one shard and ``1`` in another; ``-0.0`` and ``0.0``), a non-integral float's
    bits mixed apart from every integer's; None for any other type."""
    t = array.type
    if pa.types.is_dictionary(t):
        return _numeric_words(array.cast(t.value_type))
    if pa.types.is_temporal(t):
        array = array.cast(pa.int64()) if not pa.types.is_date32(t) else array.cast(pa.int32())
        t = array.type
    nulls = array.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(t):
        values = array.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        nulls = nulls | np.isnan(values)
        values = np.where(values == 0.0, 0.0, values)  # -0.0 is 0.0
        integral = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2.0 ** 53)
        # an integral float is the integer it holds: 1.0 in one shard, 1 in another are one value
        as_int = np.where(integral, values, 0.0).astype(np.int64).view(np.uint64)
        words = np.where(integral, as_int, mix64(values.view(np.uint64) ^ _NONINTEGRAL))
        return words, nulls
    if pa.types.is_unsigned_integer(t):  # by its bits: an unsigned value below 2**63 as the signed one
        return array.cast(pa.uint64()).fill_null(0).to_numpy(zero_copy_only=False), nulls
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return array.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64), nulls
    return None


def _keyed(words: np.ndarray, nulls: np.ndarray, key: str, salt: np.uint64 = np.uint64(0)) -> np.ndarray:
    """Numeric words hashed in family ``key`` (a splitmix64 keyed by the family and ``salt``); every null
    one value."""
    return np.where(nulls, _NULL, mix64(words ^ (_FAMILY[key] ^ salt)))


def _flat_values(array: pa.Array, key: str) -> np.ndarray:
    """(n,) uint64 hashes of a flat (non-nested) column's values; every null one value."""
    numeric = _numeric_words(array)
    if numeric is not None:
        return _keyed(*numeric, key)
    t = array.type
    if pa.types.is_dictionary(t):
        array = array.cast(t.value_type)
        t = array.type
    nulls = array.is_null().to_numpy(zero_copy_only=False)
    # text, bytes, decimals and anything else: by its text or bytes
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)):
        array = pc.cast(array, pa.string())
    values = array.to_numpy(zero_copy_only=False).astype(object)
    values[nulls] = ""
    hashed = pd.util.hash_array(values, hash_key=key, categorize=False)
    return np.where(nulls, _NULL, np.asarray(hashed, dtype=np.uint64))


def _list_values(array: pa.Array, key: str) -> np.ndarray:
    """(n,) uint64: a list's elements hashed with their positions and combined by XOR (order matters,
    length matters); a null list one value."""
    n = len(array)
    nulls = array.is_null().to_numpy(zero_copy_only=False)
    if isinstance(array, pa.FixedSizeListArray):
        size = array.type.list_size
        offsets = np.arange(n + 1, dtype=np.int64) * size
        flat = array.flatten()
        if array.offset or array.null_count:  # flatten() drops null slots: take the child's slice instead
            flat = array.values.slice(array.offset * size, n * size)
    else:
        offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        flat = array.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    element = column_hash(flat, key) if len(flat) else np.zeros(0, dtype=np.uint64)
    position = np.arange(len(flat), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    mixed = mix64(element ^ (position.astype(np.uint64) * _POSITION))
    out = mix64(lengths.astype(np.uint64))
    nonempty = lengths > 0
    if nonempty.any() and len(mixed):
        starts = offsets[:-1][nonempty]
        out[nonempty] ^= np.bitwise_xor.reduceat(mixed, starts)
    return np.where(nulls, _NULL, out)


def column_hash(array: pa.Array | pa.ChunkedArray, key: str = KEYS[0]) -> np.ndarray:
    """(n,) uint64: each value of one column hashed (``key``: the hash family)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    if pa.types.is_struct(t):
        nulls = array.is_null().to_numpy(zero_copy_only=False)
        out = np.zeros(len(array), dtype=np.uint64)
        for i in sorted(range(t.num_fields), key=lambda i: t.field(i).name):
            out = mix64(out ^ column_hash(array.field(i), key) ^ np.uint64(string_hash(t.field(i).name)))
        return np.where(nulls, _NULL, out)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _list_values(array, key)
    return _flat_values(array, key)


def row_hashes(table: pa.Table, columns: Sequence[str], per_column: bool = True,
               rows: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(h1, h2, per_column): the two 64-bit content hashes of every row over ``columns`` (in the order
    given: :func:`content_columns`'s), and (n, len(columns)) uint64 of the first family's column hashes
    (None unless ``per_column``; with ``rows`` false only those are worked out, h1 and h2 are None).

    Each column's hashes are keyed by its name, then summed, each sum multiplied by an odd constant before
    the next column joins (so order matters), and the sums mixed once more at the end."""
    n = table.num_rows
    h = [np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)]
    values_of = np.zeros((len(columns), n), dtype=np.uint64) if per_column else None
    families = KEYS if rows else KEYS[:1]
    for j, name in enumerate(columns):
        salt = np.uint64(string_hash(name))
        column = table.column(name).combine_chunks()
        numeric = None if pa.types.is_nested(column.type) else _numeric_words(column)
        for f, key in enumerate(families):  # a numeric column's words are read once for both families
            if numeric is not None:
                values = _keyed(*numeric, key, salt)
            else:
                values = mix64(column_hash(column, key) ^ salt)
            if f == 0 and per_column:
                values_of[j] = values
            if rows:
                h[f] *= _ROW_STEP
                h[f] += values
    per = values_of.T if per_column else None
    return (mix64(h[0]), mix64(h[1]), per) if rows else (None, None, per)
