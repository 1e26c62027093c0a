"""Reading input shards as Arrow record batches, conformed to the planned schema.

Reading happens on workers: each *split* (a Parquet file's row groups, or a
whole CSV / JSON Lines file) is read as record batches. Every batch is conformed
to the planned schema, which holds every value as written (``sanitizer.data.value_types``:
CSV is read as text and typed only where the type writes the text back unchanged).
A value that cannot take the planned type exactly (the string ``"abc"`` or
``"02134"`` in an integer column) becomes null and is recorded in the internal
``__sanitizer_read_issue`` column, so the row is later quarantined with a reason
instead of failing the run or being silently dropped. Finding the files is
``sanitizer.io.discover``.
"""


import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.errors import InputError
from sanitizer.data.batch import READ_ISSUE
from sanitizer.data.value_types import TYPE_SCAN_BYTES, TypeScan, cast_exact, parse_numbers
from sanitizer.io.discover import InputFile, Split
from sanitizer.io.input_rules import open_input

def _open(path: str):
    return open_input(path)  # decompressed by suffix (.csv.gz): sanitizer.io.discover


def parquet_metadata(path: str):
    import pyarrow.parquet as pq

    try:
        with _open(path) as fh:
            return pq.read_metadata(fh)
    except Exception as exc:
        raise InputError(
            f"input file {path!r} is not a readable Parquet file ({exc}); "
            "remove or replace the corrupt shard and run again"
        ) from None


def read_schema(f: InputFile, scan_bytes: int = TYPE_SCAN_BYTES) -> pa.Schema:
    """The schema of one input file, as the reader will produce it (a CSV file's types settled
    over its first ``scan_bytes``, at least its first block: ``sanitizer.data.value_types``)."""
    if f.format == "parquet":
        return parquet_metadata(f.path).schema.to_arrow_schema()
    if f.format == "csv":
        return _csv_types(f, scan_bytes)
    for batch in iter_file_batches(f, batch_rows=4096, schema=None):
        return batch.schema
    raise InputError(f"input file {f.path!r} has no header or no rows; remove it or add data")


def _csv_types(f: InputFile, scan_bytes: int) -> pa.Schema:
    """The column types of a CSV file that hold every value exactly as written
    (``sanitizer.data.value_types``), settled over its first ``scan_bytes`` (at least one block)."""
    scan = None
    seen = 0
    for table in iter_file_batches(f, batch_rows=65_536, schema=None):
        if scan is None:
            check_unique_columns(table.column_names, f.path)
            scan = TypeScan(table.column_names)
        scan.add(table)
        seen += table.nbytes
        if seen >= scan_bytes:
            break
    if scan is None:
        raise InputError(f"input file {f.path!r} has no header or no rows; remove it or add data")
    return scan.schema()


def parquet_splits(files: list[InputFile], target_rows: int) -> tuple[list[Split], dict[int, int]]:
    """Split Parquet files by row groups (about target_rows rows each); also the row count per file."""
    splits: list[Split] = []
    rows: dict[int, int] = {}
    for index, f in enumerate(files):
        meta = parquet_metadata(f.path)
        rows[index] = meta.num_rows
        first = 0
        group: list[int] = []
        group_rows = 0
        start = 0
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            if not group:
                start = first
            group.append(rg)
            group_rows += n
            first += n
            if group_rows >= target_rows:
                splits.append(Split(index, tuple(group), start))
                group, group_rows = [], 0
        if group:
            splits.append(Split(index, tuple(group), start))
    return splits, rows


def iter_file_batches(f: InputFile, batch_rows: int, schema: pa.Schema | None, split: Split | None = None,
                      columns: list[str] | None = None):
    """Yield pa.Table batches of one split, conformed to ``schema`` when given."""
    try:
        with _open(f.path) as fh:
            if f.format == "parquet":
                import pyarrow.parquet as pq

                pf = pq.ParquetFile(fh)
                groups = list(split.row_groups) if split and split.row_groups is not None else None
                for batch in pf.iter_batches(batch_size=batch_rows, row_groups=groups, columns=columns):
                    yield _conform(pa.Table.from_batches([batch]), schema, f)
            elif f.format == "csv":
                yield from _rebatch(_csv_reader(fh, _csv_names(f)), batch_rows, schema, f, columns)
            else:
                table = _read_jsonl(fh.read(), f.path)
                yield from _rebatch(table.to_batches(max_chunksize=batch_rows), batch_rows, schema, f, columns)
    except InputError:
        raise
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(
            f"input file {f.path!r} could not be read as {f.format} ({exc}); fix or remove the file and run again"
        ) from None


CSV_NULLS = [""]
"""Only an empty field is null: ``NA``, ``None`` or ``NULL`` are text as written (a numeric feature
reads them as missing values, see ``records.MISSING_WORDS``)."""


def _csv_names(f: InputFile) -> list[str]:
    import pyarrow.csv as pcsv

    with _open(f.path) as fh:
        return pcsv.open_csv(fh, read_options=pcsv.ReadOptions(block_size=1 << 22)).schema.names


def _csv_reader(fh, names: list[str]):
    """A streaming CSV reader that reads every column as text (an empty field as null).

    Types are settled by ``sanitizer.data.value_types`` and applied batch by batch in ``_conform``, so a
    value its column's type cannot hold as written (``"abc"`` or ``"02134"`` deep inside an integer
    column) quarantines that row instead of failing the file or changing the value.
    """
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(
        null_values=CSV_NULLS,
        strings_can_be_null=True,
        column_types={name: pa.string() for name in names},
    )
    return pcsv.open_csv(fh, read_options=pcsv.ReadOptions(block_size=1 << 22), convert_options=convert)


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


def _rebatch(reader, batch_rows, schema, f, columns):
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in reader:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= batch_rows:
            table = pa.Table.from_batches(pending)
            head, tail = table.slice(0, batch_rows), table.slice(batch_rows)
            yield _conform(_select(head, columns), schema, f)
            pending = tail.to_batches()
            pending_rows = tail.num_rows
    if pending_rows:
        yield _conform(_select(pa.Table.from_batches(pending), columns), schema, f)


def _select(table: pa.Table, columns):
    if columns is None:
        return table
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        return table  # _conform reports the missing columns with the file name
    return table.select(columns)


def check_unique_columns(names: list[str], path: str) -> None:
    """Refuse a file whose columns share a name: which of them a reader picks is undefined."""
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(
            f"input file {path!r} has more than one column named {', '.join(map(repr, duplicated))}; "
            "give every column a unique name"
        )


def _conform(table: pa.Table, schema: pa.Schema | None, f: InputFile) -> pa.Table:
    """Cast a batch to the planned schema; values that cannot be cast become null plus a read issue."""
    table = table.combine_chunks()
    if schema is None:
        return table
    check_unique_columns(table.column_names, f.path)
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise InputError(
            f"input file {f.path!r} lacks column(s) {missing}; every shard must have the columns of the first shard"
        )
    extra = [name for name in table.column_names if name not in schema.names]
    if extra:
        raise InputError(
            f"input file {f.path!r} has column(s) {extra} that the first shard lacks; "
            "every shard must share one schema"
        )
    if table.schema.equals(schema):
        return table
    issues = np.full(table.num_rows, None, dtype=object)
    arrays = []
    recast = False
    for field in schema:
        col = table.column(field.name)
        if col.type != field.type:
            col = _cast_column(col, field, issues)
            recast = True
        arrays.append(col)
    out = pa.Table.from_arrays(arrays, schema=schema)
    if recast and not pd.isnull(issues).all():
        out = out.append_column(READ_ISSUE, pa.array(issues, type=pa.string()))
    return out


def _cast_column(col: pa.ChunkedArray, field: pa.Field, issues: np.ndarray) -> pa.ChunkedArray:
    """One column of a batch as the planned type, no value changed.

    Text (CSV) takes the type only where it is written the way the type writes it back
    (``value_types.exact_mask``); any other value becomes null plus a read issue holding the text
    (``invalid:non_numeric:COL`` for text that is no number, ``invalid:inexact:COL`` otherwise), so
    its row is quarantined. A typed column (a shard that stores it with a narrower type) is widened;
    where a value does not survive that (an int64 beyond +-2^53 as float64) the read is refused.
    """
    col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or pa.types.is_string(
            field.type) or pa.types.is_large_string(field.type):
        try:
            return pa.chunked_array([pc.cast(col, field.type)])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(
                f"column {field.name!r} holds {col.type} values that {field.type} (its type in the other shards) "
                f"cannot hold unchanged ({exc}); rewrite the shards with one type for the column"
            ) from None
    values, bad = cast_exact(col, field.type)
    if bad.any():
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        unparsable = parse_numbers(col)[1] if numeric else np.zeros(len(col), dtype=bool)
        text = col.to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(bad):
            if unparsable[i]:
                entry = {"code": f"invalid:non_numeric:{field.name}", "column": field.name, "value": text[i]}
            else:
                entry = {"code": f"invalid:inexact:{field.name}", "column": field.name, "value": text[i],
                         "type": str(field.type),
                         "note": f"{field.type} cannot hold this value exactly as written"}
            issue = json.dumps(entry)
            issues[i] = issue if issues[i] is None else issues[i] + "\n" + issue
    return pa.chunked_array([values])
