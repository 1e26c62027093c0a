"""JSON Lines: one JSON object per line, every value as written (nested values stay nested,
long integers stay exact)."""

from __future__ import annotations

import json
import re

import pyarrow as pa

from sanitizer.errors import InputError
from sanitizer.io.readers.base import Reader, rebatch


class JsonLinesReader(Reader):
    name = "jsonl"
    title = "JSON Lines"
    extensions = (".jsonl", ".ndjson", ".json")
    compressed = True
    decodes_text = True

    def read(self, fh, f, batch_rows, split, columns):
        table = _read_jsonl(fh.read(), f.path)
        yield from rebatch(table.to_batches(max_chunksize=batch_rows), batch_rows, columns)


_LONG_INTEGER = re.compile(rb"(?<![0-9.eE])[0-9]{16,}(?![0-9.eE])")
"""A run of 16+ digits that is not part of a fraction or exponent: an integer that float64 may not
hold exactly (pyarrow's reader would turn it into a double where its field also holds fractions)."""


def _read_jsonl(data: bytes, path: str) -> pa.Table:
    """JSON Lines -> Arrow, every value as written.

    pyarrow's fast reader first, for a file with no integer of 16 or more digits; a field it reads
    as a timestamp (it parses ISO-looking strings) is read again as the text it is. Otherwise (a
    field holding different kinds of value, nested lists mixing numbers and objects, long integers)
    the file is parsed line by line (:func:`_jsonl_by_line`).
    """
    import pyarrow.json as pjson

    if not _LONG_INTEGER.search(data):
        options = pjson.ReadOptions(block_size=1 << 24)
        try:
            table = pjson.read_json(pa.BufferReader(data), read_options=options)
        except pa.ArrowInvalid:
            table = None
        if table is not None:
            as_text = pa.schema([f.with_type(_no_timestamps(f.type)) for f in table.schema])
            if as_text.equals(table.schema):
                return table
            try:
                return pjson.read_json(pa.BufferReader(data), read_options=options,
                                       parse_options=pjson.ParseOptions(explicit_schema=as_text))
            except pa.ArrowInvalid:
                pass
    return _jsonl_by_line(data, path)


def _no_timestamps(t: pa.DataType) -> pa.DataType:
    """``t`` with every timestamp (pyarrow's reading of an ISO-looking JSON string) as string."""
    if pa.types.is_timestamp(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_no_timestamps(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_no_timestamps(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_no_timestamps(t.value_type)))
    return t


def _jsonl_by_line(data: bytes, path: str) -> pa.Table:
    """JSON Lines parsed line by line (lines end at ``\\n`` only: U+2028 inside a string is text).

    A field Arrow can hold with one type keeps it (nested objects as structs, arrays as lists, an
    integer beyond float64's exact range as int64 unless the field also holds fractions). Any other
    field (a number in one line and text in another, an array mixing numbers and objects, an integer
    beyond int64) becomes text: a string value as it is, every other value as its compact JSON text
    (``{"x":[1,{"y":2}]}``, ``123456789012345678901234567890``), never rounded.
    """
    rows = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"input file {path!r}, line {number}, is not valid UTF-8 ({exc}); fix or remove the line") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"input file {path!r}, line {number}, is not valid JSON ({exc}); fix or remove the line") from None
        if not isinstance(row, dict):
            raise InputError(f"input file {path!r}, line {number}, is not a JSON object; each line must be one record")
        rows.append(row)
    names = list(dict.fromkeys(k for row in rows for k in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[name] = pa.array(
                [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False, separators=(",", ":"))
                 for v in values], type=pa.string())
    return pa.table(columns)
