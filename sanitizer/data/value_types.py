"""Column types that hold the input's values exactly as written.

A CSV field is text. A CSV column gets a type other than text only when *every* value in it is
written the way that type writes it back, so the shards hold what the user wrote:

* ``int64``: ``0`` or an optional ``-`` and digits without leading zeros, within int64's range
  (``02134``, ``+5``, `` 7``, ``-0`` and 20-digit numbers stay text);
* ``float64``: a plain decimal number (``-1.50``, ``2.5e-3``; no leading zeros, no ``+``, no
  spaces) or ``nan`` / ``inf`` / ``infinity``. A decimal fraction is read as the nearest
  float64, as every float reader does; an integer written without a fraction or exponent must
  be within +-2^53, where float64 holds it exactly, and a value that would overflow to inf or
  underflow to 0 keeps the column as text;
* ``bool``: ``true`` / ``false`` (also ``True``, ``TRUE``, ...);
* ``date32``: ``YYYY-MM-DD``; ``timestamp[s]``: ``YYYY-MM-DD HH:MM:SS``;
* anything else, including ``NA``, ``None`` and ``NULL``, is text. Only an empty field is null.

Types are settled over the input's first :data:`TYPE_SCAN_BYTES` (whole files while that lasts,
then each further file's first block). A later value that its column's type cannot hold exactly is not
changed: its row is quarantined with the text in the evidence (``invalid:inexact:COL``, or
``invalid:non_numeric:COL`` for text that is no number at all).

Shards of one input that store a column with different types are unified only where no value
can change (:func:`unify_schemas`); otherwise the run is refused, naming the column, both types
and both files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.errors import InputError

TYPE_SCAN_BYTES = 256 * 2**20
"""Bytes of CSV input read at planning to settle column types (each file's first block beyond it)."""

EXACT_FLOAT_INT = 2**53
"""Integers up to this magnitude are exact in float64; beyond it, consecutive integers share a float."""

_INT = r"^(0|-?[1-9][0-9]{0,18})$"
_INT_LITERAL = r"^-?[0-9]+$"
_FLOAT = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
_PLAIN_FLOAT = r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,200})?$"
"""A decimal that float64 holds as written with no further check: at most 15 integer digits (below
2^53), no exponent, and too short to overflow or underflow. Most columns hold only these."""
_FLOAT_WORD = r"^-?(nan|inf|infinity)$"
_ZERO = r"^-?0(\.0+)?([eE][-+]?[0-9]+)?$"
_BOOL = r"^(true|false|True|False|TRUE|FALSE)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"

CANDIDATES = (pa.int64(), pa.float64(), pa.bool_(), pa.date32(), pa.timestamp("s"))
"""The types a CSV column may take besides text, in order of preference."""


def _np(mask) -> np.ndarray:
    return np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _match(text: pa.Array, pattern: str, ignore_case: bool = False) -> np.ndarray:
    return _np(pc.match_substring_regex(text, pattern, ignore_case=ignore_case))


def _digits_within(digits: pa.Array, limit: str, mask: np.ndarray) -> np.ndarray:
    """``mask`` narrowed to the digit strings whose value is at most ``limit`` (no leading zeros)."""
    length = np.asarray(pc.utf8_length(digits).fill_null(0).to_numpy(zero_copy_only=False))
    same = length == len(limit)
    within = length < len(limit)
    if (mask & same).any():
        within |= same & _np(pc.less_equal(digits, limit))
    return mask & within


def _cast_where(text: pa.Array, ok: np.ndarray, type_: pa.DataType, filler: str) -> pa.Array:
    return pc.cast(pc.if_else(pa.array(ok), text, pa.scalar(filler)), type_)


def exact_mask(text: pa.Array, type_: pa.DataType) -> np.ndarray:
    """Per value of a string array: True where ``type_`` stores the text exactly as written (or
    the value is null); see the module docstring for what each type accepts."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    null = _np(text.is_null())
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_null(type_) and null.all():
        return np.ones(len(text), dtype=bool)
    if pa.types.is_int64(type_):
        ok = _match(text, _INT)
        negative = _match(text, r"^-")
        digits = pc.utf8_ltrim(text, characters="-")
        ok = _digits_within(digits, "9223372036854775807", ok & ~negative) | _digits_within(
            digits, "9223372036854775808", ok & negative)
    elif pa.types.is_float64(type_):
        ok = _match(text, _PLAIN_FLOAT)
        if not (ok | null).all():  # the full rules, for batches holding any other kind of value
            ok = _float_exact(text)
    elif pa.types.is_boolean(type_):
        ok = _match(text, _BOOL)
    elif pa.types.is_date32(type_) or type_ == pa.timestamp("s"):
        ok = _match(text, _DATE if pa.types.is_date32(type_) else _TIMESTAMP)
        ok = _round_trips(text, ok, type_)
    else:
        ok = np.zeros(len(text), dtype=bool)
    return ok | null


def _float_exact(text: pa.Array) -> np.ndarray:
    """Per value: float64 holds it as written (the module docstring's rules for ``float64``)."""
    ok = _match(text, _FLOAT) | _match(text, _FLOAT_WORD, ignore_case=True)
    integer = ok & _match(text, _INT_LITERAL)
    if integer.any():
        digits = pc.utf8_ltrim(text, characters="-")
        ok = (ok & ~integer) | _digits_within(digits, str(EXACT_FLOAT_INT), integer)
    if ok.any():
        values = np.asarray(_cast_where(text, ok, pa.float64(), "0").to_numpy(zero_copy_only=False))
        inf, zero = np.isinf(values), ok & (values == 0)
        if inf.any():
            ok &= ~(inf & ~_match(text, _FLOAT_WORD, ignore_case=True))  # 1e400 would become inf
        if zero.any():
            ok &= ~(zero & ~_match(text, _ZERO))  # 1e-400 would become 0
    return ok


def _round_trips(text: pa.Array, ok: np.ndarray, type_: pa.DataType) -> np.ndarray:
    """``ok`` narrowed to the values that parse as ``type_`` and are written back unchanged."""
    if not ok.any():
        return ok
    try:
        back = pc.cast(_cast_where(text, ok, type_, "1970-01-01" if pa.types.is_date32(type_)
                                   else "1970-01-01 00:00:00"), pa.string())
        return ok & _np(pc.equal(back, text))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = ok.copy()  # some value is no valid date (2024-02-30): find which, one by one (rare)
    for i in np.flatnonzero(ok):
        try:
            value = pc.cast(text[i:i + 1], type_)
            out[i] = pc.cast(value, pa.string())[0].as_py() == text[i].as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out[i] = False
    return out


def cast_exact(text: pa.Array, type_: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Text -> ``type_``: (the values, null where not exact; the mask of non-null values that
    ``type_`` cannot hold exactly as written)."""
    ok = exact_mask(text, type_)
    null = _np(text.is_null())
    bad = ~ok & ~null
    if pa.types.is_null(type_):
        return pa.nulls(len(text)), bad
    filler = {"date32[day]": "1970-01-01", "timestamp[s]": "1970-01-01 00:00:00", "bool": "false"}.get(
        str(type_), "0")
    values = pc.cast(text, type_) if not bad.any() else _cast_where(text, ok | null, type_, filler)
    if bad.any():
        values = pc.if_else(pa.array(bad), pa.scalar(None, type_), values)
    return values, bad


class TypeScan:
    """Candidate types per column, narrowed batch by batch over a text file (all-string batches)."""

    def __init__(self, names: list[str]):
        self.names = list(names)
        self.candidates = {name: list(CANDIDATES) for name in names}
        self.present = dict.fromkeys(names, False)

    def add(self, table: pa.Table) -> None:
        for name in self.names:
            text = table.column(name).combine_chunks()
            if text.null_count == len(text):
                continue
            self.present[name] = True
            self.candidates[name] = [t for t in self.candidates[name] if exact_mask(text, t).all()]

    def schema(self) -> pa.Schema:
        fields = []
        for name in self.names:
            if not self.present[name]:
                type_ = pa.null()
            else:
                type_ = self.candidates[name][0] if self.candidates[name] else pa.string()
            fields.append(pa.field(name, type_))
        return pa.schema(fields)


# --------------------------------------------------------------------------- shards that disagree


def _plain(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _int_bits(t: pa.DataType) -> int:
    return t.bit_width


def unify_type(a: pa.DataType, b: pa.DataType, as_text: bool = False) -> pa.DataType | None:
    """The type that holds every value of a column stored as ``a`` in one shard and ``b`` in
    another without changing any, or None where there is none. ``as_text``: the values were read
    as the text they are written as (CSV), so text holds them all."""
    if a == b:
        return a
    a, b = _plain(a), _plain(b)
    if a == b:
        return a
    if pa.types.is_null(a) or pa.types.is_null(b):
        return b if pa.types.is_null(a) else a
    text = {pa.string(), pa.large_string()}
    if as_text:
        return pa.string()  # the text as written holds both
    integer = pa.types.is_integer
    floating = pa.types.is_floating
    if integer(a) and integer(b):
        if pa.types.is_signed_integer(a) == pa.types.is_signed_integer(b):
            return a if _int_bits(a) >= _int_bits(b) else b
        signed, unsigned = (a, b) if pa.types.is_signed_integer(a) else (b, a)
        return signed if _int_bits(signed) > _int_bits(unsigned) else None
    if floating(a) and floating(b):
        return a if a.bit_width >= b.bit_width else b
    if (integer(a) and floating(b)) or (floating(a) and integer(b)):
        i, f = (a, b) if integer(a) else (b, a)
        if f.bit_width == 64 or _int_bits(i) <= 16:
            return f  # a 64-bit integer beyond +-2^53 is refused when its shard is read
        return None
    if a in text and b in text:
        return pa.large_string()
    if {a, b} == {pa.binary(), pa.large_binary()}:
        return pa.large_binary()
    if type(a) is type(b) and (pa.types.is_list(a) or pa.types.is_large_list(a) or pa.types.is_fixed_size_list(a)):
        if pa.types.is_fixed_size_list(a) and a.list_size != b.list_size:
            return None
        inner = unify_type(a.value_type, b.value_type, as_text)  # vectors: float32 in one shard, float64 in another
        if inner is None:
            return None
        field = a.value_field.with_type(inner)
        if pa.types.is_fixed_size_list(a):
            return pa.list_(field, a.list_size)
        return pa.list_(field) if pa.types.is_list(a) else pa.large_list(field)
    return None


def unify_schemas(schemas: list[pa.Schema], paths: list[str], as_text: bool = False) -> pa.Schema:
    """One schema for every shard: the first shard's columns, each with a type that holds every
    shard's values unchanged (:func:`unify_type`). Refuses, naming the column, both types and both
    files, where no such type exists. Columns one shard lacks are left for the reader to report."""
    first = schemas[0]
    fields = []
    for field in first:
        type_, source = field.type, paths[0]
        for schema, path in zip(schemas[1:], paths[1:]):
            index = schema.get_field_index(field.name)
            if index < 0:
                continue
            other = schema.field(index).type
            unified = unify_type(type_, other, as_text)
            if unified is None:
                raise InputError(
                    f"column {field.name!r} is {type_} in {source!r} but {other} in {path!r}; no type holds "
                    "both without changing values: rewrite the shards with one type for the column"
                )
            if unified != type_:
                type_, source = unified, path
        fields.append(field.with_type(type_))
    return pa.schema(fields, metadata=first.metadata)


_NAN_WORDS = pa.array(["nan", "+nan", "-nan"])


def parse_numbers(column) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Text (or anything castable to text) -> float64, vectorised.

    Returns (values, unparsable, null): ``unparsable`` marks non-null values that
    are not numbers (``"abc"``); a literal ``"nan"`` parses to NaN and is left for
    the NaN check to report.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    null = np.asarray(text.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = pd.to_numeric(
        pd.Series(text.to_numpy(zero_copy_only=False), dtype=object), errors="coerce"
    ).to_numpy(dtype=np.float64, na_value=np.nan)
    nan_word = np.asarray(
        pc.is_in(pc.utf8_lower(text), value_set=_NAN_WORDS).fill_null(False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    return values, np.isnan(values) & ~null & ~nan_word, null
