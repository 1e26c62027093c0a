"""Reading input shards as Arrow record batches, conformed to the planned schema.

Reading happens on workers: each *split* (a Parquet file's row groups, or a
whole CSV / JSON Lines file) is read as record batches by its format's reader
(``sanitizer.io.readers``). Every batch is conformed to the planned schema,
which holds every value as written (``sanitizer.data.value_types``: CSV is read
as text and typed only where the type writes the text back unchanged).
A value that cannot take the planned type exactly (the string ``"abc"`` or
``"02134"`` in an integer column) becomes null and is recorded in the internal
``__sanitizer_read_issue`` column, so the row is later quarantined with a reason
instead of failing the run or being silently dropped. Finding the files is
``sanitizer.io.discover``.
"""


import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.errors import InputError
from sanitizer.data.batch import READ_ISSUE
from sanitizer.data.value_types import TYPE_SCAN_BYTES, cast_exact, parse_numbers
from sanitizer.io.discover import InputFile
from sanitizer.io.readers import reader_for
from sanitizer.io.readers.base import Split, check_unique_columns, read_tables


def read_schema(f: InputFile, scan_bytes: int = TYPE_SCAN_BYTES) -> pa.Schema:
    """The schema of one input file, as the reader will produce it (a CSV file's types settled
    over its first ``scan_bytes``, at least its first block: ``sanitizer.data.value_types``)."""
    return reader_for(f.format).schema(f, scan_bytes)


def iter_file_batches(f: InputFile, batch_rows: int, schema: pa.Schema | None, split: Split | None = None,
                      columns: list[str] | None = None):
    """Yield pa.Table batches of one split, conformed to ``schema`` when given."""
    yield from read_tables(reader_for(f.format), f, batch_rows, split, columns,
                           conform=lambda table: _conform(table, schema, f))


def _conform(table: pa.Table, schema: pa.Schema | None, f: InputFile) -> pa.Table:
    """Cast a batch to the planned schema; values that cannot be cast become null plus a read issue."""
    table = table.combine_chunks()
    if schema is None:
        return table
    check_unique_columns(table.column_names, f.path)
    present, planned = set(table.column_names), set(schema.names)
    missing = [name for name in schema.names if name not in present]
    if missing:
        raise InputError(
            f"input file {f.path!r} lacks column(s) {missing}; every shard must have the columns of the first shard"
        )
    extra = [name for name in table.column_names if name not in planned]
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
