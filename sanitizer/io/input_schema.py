"""The schema a run reads its input with, and what planning learns about the input's columns.

:func:`unified_schema` gives every column a type that holds every shard's values as written
(``sanitizer.data.value_types``); :func:`inexact_integers` finds the columns holding integers that
float64, the detectors' number type, would round; :func:`conformed_schema` is what every batch is
cast to; :func:`check_features_have_values` refuses a feature column with no value at all.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.errors import InputError
from sanitizer.data.batch import FeatureColumn, beyond_float, inexact_integer_text, missing_words
from sanitizer.io.readers import reader_for
from sanitizer.io.sources import iter_file_batches, read_schema
from sanitizer.data.value_types import EXACT_FLOAT_INT, TYPE_SCAN_BYTES, parse_numbers, unify_schemas


def unified_schema(files) -> pa.Schema:
    """The first file's columns with types that hold every file's values unchanged
    (``value_types.unify_schemas``: refused, naming the column, both types and both files, where none does).
    CSV types are settled over the input's first ``TYPE_SCAN_BYTES`` (whole files while the budget
    lasts, then each file's first block)."""
    schemas, budget = [], TYPE_SCAN_BYTES
    for f in files:  # CSV: types settled over the first TYPE_SCAN_BYTES of the input, then first blocks
        schemas.append(read_schema(f, max(budget, 0)))
        budget -= f.size
    if schemas[0] is None or not schemas[0].names:
        raise InputError(f"input file {files[0].path!r} has no columns")
    unified = unify_schemas(schemas, [f.path for f in files], as_text=reader_for(files[0].format).values_as_text)
    _check_widened_integers(files, schemas, unified)
    return unified


def _check_widened_integers(files, schemas: list[pa.Schema], unified: pa.Schema) -> None:
    """Refuse, before anything runs, a 64-bit integer column that other shards store as float64 when
    what its reader knows without reading the rows (Parquet's row-group statistics) holds a value
    float64 would round (otherwise reading that shard refuses it)."""
    for f, schema in zip(files, schemas):
        names = [field.name for field in schema if field.type in (pa.int64(), pa.uint64())
                 and unified.get_field_index(field.name) >= 0
                 and pa.types.is_floating(unified.field(field.name).type)]
        if not names:
            continue
        found = reader_for(f.format).integers_beyond(f, names, EXACT_FLOAT_INT)
        if found:
            name, value = next(iter(found.items()))
            raise InputError(
                f"column {name!r} is {schema.field(name).type} in {f.path!r}, holding {value}, but "
                f"{unified.field(name).type} in other shards, which cannot hold that value unchanged; "
                "rewrite the shards with one type for the column"
            )


def inexact_integers(files, schema: pa.Schema, first_batch, skip: set) -> dict[str, str]:
    """Column -> an example value, for every column holding an integer beyond +-2^53 (float64, the
    detectors' number type, would round it): integer columns by the first rows and by what the
    reader knows of every file without reading it (Parquet's row-group statistics); text columns by
    integers written in their first rows.
    The label and id columns (``skip``) are never features and are not looked at."""
    found: dict[str, str] = {}
    wide = [f.name for f in schema if f.type in (pa.int64(), pa.uint64()) and f.name not in skip]
    if first_batch is not None:
        for name in first_batch.column_names:
            if name in skip:
                continue
            col = first_batch.column(name).combine_chunks()
            if col.type in (pa.int64(), pa.uint64()):
                big = beyond_float(col)
                if big.any():
                    found[name] = str(col[int(np.flatnonzero(big)[0])].as_py())
            elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                big = inexact_integer_text(col, parse_numbers(col)[0])
                if big is not None:
                    found[name] = col[int(np.flatnonzero(big)[0])].as_py().strip()
    pending = [n for n in wide if n not in found]
    if pending:
        for f in files:
            for name, value in reader_for(f.format).integers_beyond(f, pending, EXACT_FLOAT_INT).items():
                found.setdefault(name, value)
            pending = [n for n in pending if n not in found]
            if not pending:
                break
    return found


def inexact_detail(example: str) -> str:
    return (f"integers beyond +-2^53 (such as {example}), which float64 features cannot hold exactly; "
            "kept exact in the shards")


def no_values(name: str, path: str) -> str:
    return (
        f"feature column {name!r} has no values in the first input file {path!r} (every row is null, NaN or "
        f"infinite), so every row would be quarantined as invalid:null:{name}; drop the column from the input, "
        "or name the feature columns to use with --feature-columns (comma-separated) and leave it out"
    )


def conformed_schema(schema: pa.Schema, features: list[FeatureColumn], fmt: str, roles: set,
                      warnings: list[str]) -> pa.Schema:
    """The schema every batch is cast to (``sources._conform``), and so the schema of the outputs.

    * Every column keeps the type it has in the input (unified over the shards, see
      ``value_types``), so the outputs hold the values as written. A feature column stored as text
      but holding numbers (``FeatureColumn.coerce``) stays text: the detectors read it parsed
      (``records.extract``), a missing-value word (``NA``) as a missing value and other text that
      is no number as ``invalid:non_numeric:COL``.
    * A CSV / JSON Lines column that is empty in the first rows has no type (``null``); it becomes
      text, so values further down are kept rather than failing the read. It is not a feature.
    """
    fields = []
    for field in schema:
        if pa.types.is_null(field.type) and not reader_for(fmt).declares_types:
            if field.name not in roles:
                warnings.append(
                    f"column {field.name!r} is empty in the first rows of the first input file; it is kept "
                    "as text and not used as a feature"
                )
            field = field.with_type(pa.string())
        fields.append(field)
    return pa.schema(fields, metadata=schema.metadata)


def check_features_have_values(f, schema: pa.Schema, features: list[FeatureColumn]) -> None:
    """Refuse a scalar feature column with no finite value in the whole first input file.

    Every row would fail its null / NaN check and be quarantined: that is a data-set problem (a
    column exported empty, the wrong file), not a row problem, so the run stops before it starts.
    Reading stops at the first batch in which every feature has a value, which for ordinary data is
    the first one.
    """
    pending = [fc.name for fc in features if not fc.is_list]
    if not pending:
        return
    columns = pending if reader_for(f.format).columnar else None
    read_schema_ = pa.schema([schema.field(n) for n in pending]) if columns else schema
    rows = 0
    for table in iter_file_batches(f, 65_536, read_schema_, None, columns):
        rows += table.num_rows
        for name in list(pending):
            column = table.column(name).combine_chunks()
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                values = pa.array(parse_numbers(column)[0])
            else:
                values = pc.cast(column, pa.float64(), safe=False)  # a finite value is all this asks
            if pc.any(pc.fill_null(pc.is_finite(values), False)).as_py():
                pending.remove(name)
        if not pending:
            return
    if rows:  # a first file without rows says nothing about the columns
        raise InputError(no_values(pending[0], f.path))


def numeric_share(column) -> float:
    """Share of a text column's non-empty values that parse as numbers."""
    if column is None or len(column) == 0:
        return 0.0
    _, unparsable, null = parse_numbers(column)
    null = null | missing_words(column)
    empty = np.asarray(
        pc.equal(pc.utf8_trim_whitespace(pc.cast(column, pa.string())), "").fill_null(False).to_numpy(
            zero_copy_only=False
        ),
        dtype=bool,
    )
    present = ~null & ~empty
    return float((present & ~unparsable).sum() / present.sum()) if present.any() else 0.0
