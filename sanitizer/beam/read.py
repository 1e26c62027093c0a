"""Reading the input as Arrow tables, one per record batch, with the record id column added."""

from __future__ import annotations


import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.pvalue import TaggedOutput

from sanitizer.runs import progress
from sanitizer.beam.plan import Plan
from sanitizer.data.batch import ID_COLUMN, KEY_COLUMN, keys_for_ids, mix64, string_hash
from sanitizer.io.sources import iter_file_batches

def add_ids(table: pa.Table, plan: Plan, file_index: int, first_row: int) -> pa.Table:
    """Append the record id (when generated) and the internal 64-bit key column."""
    n = table.num_rows
    if plan.id_column is None:
        rows = np.arange(first_row, first_row + n, dtype=np.int64)
        rel = plan.files[file_index].relpath
        ids = pc.binary_join_element_wise(f"{rel}:", pc.cast(pa.array(rows), pa.string()), "")
        table = table.append_column(ID_COLUMN, ids)
        keys = mix64(np.uint64(string_hash(rel)) ^ rows.astype(np.uint64))
    else:
        keys = keys_for_ids(table.column(plan.id_column).combine_chunks())
    return table.append_column(KEY_COLUMN, pa.array(keys, type=pa.uint64()))


class ReadSplitFn(beam.DoFn):
    """Read one split as Arrow tables with ids; also emit ('file_rows', (file index, rows))."""

    def __init__(self, plan: Plan, columns: list[str] | None = None, count_rows: bool = False):
        self.plan = plan
        self.columns = columns
        self.count_rows = count_rows

    def process(self, split):
        if split is None:  # ReadBatches(none=True)'s marker
            yield None
            return
        f = self.plan.files[split.file_index]
        schema = self.plan.schema
        if self.columns is not None:
            schema = pa.schema([schema.field(c) for c in self.columns])
        row = split.first_row
        for table in iter_file_batches(f, self.plan.batch_rows, schema, split, self.columns):
            out = add_ids(table, self.plan, split.file_index, row)
            row += table.num_rows
            if self.count_rows:
                progress.add("read", table.num_rows)
            yield out
        if self.count_rows:
            yield TaggedOutput("file_rows", (split.file_index, row - split.first_row))


class ReadBatches(beam.PTransform):
    """The input as Arrow tables. ``none``: one ``None`` besides them, emitted by the read itself, so a
    combine that must give a result when no row is read has an input without a Flatten beside another
    source (the FnApiRunner materialises such a Flatten's inputs whole: every table read, held at once)."""

    def __init__(self, plan: Plan, columns: list[str] | None = None, count_rows: bool = False, none: bool = False):
        super().__init__()
        self.plan, self.columns, self.count_rows, self.none = plan, columns, count_rows, none

    def expand(self, pbegin):
        splits = pbegin | "ListSplits" >> beam.Create(list(self.plan.splits) + ([None] if self.none else []))
        fn = ReadSplitFn(self.plan, self.columns, self.count_rows)
        if self.count_rows:
            return splits | "ReadSplits" >> beam.ParDo(fn).with_outputs("file_rows", main="batches")
        return splits | "ReadSplits" >> beam.ParDo(fn)
