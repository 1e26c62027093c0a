"""Parquet: typed columns, read by row groups; a column can be read alone."""

from __future__ import annotations

import pyarrow as pa

from sanitizer.errors import InputError
from sanitizer.io.input_rules import open_input
from sanitizer.io.readers.base import Reader, Split


def parquet_metadata(path: str):
    """The footer of one Parquet input file; a file that has none is refused, naming it."""
    import pyarrow.parquet as pq

    try:
        with open_input(path) as fh:
            return pq.read_metadata(fh)
    except Exception as exc:
        raise InputError(
            f"input file {path!r} is not a readable Parquet file ({exc}); "
            "remove or replace the corrupt shard and run again"
        ) from None


class ParquetReader(Reader):
    name = "parquet"
    title = "Parquet"
    extensions = (".parquet", ".pq")
    uncompressed_only = "Parquet compresses its own pages; store it uncompressed"
    declares_types = True
    columnar = True

    def read(self, fh, f, batch_rows, split, columns):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(fh)
        groups = list(split.row_groups) if split and split.row_groups is not None else None
        for batch in pf.iter_batches(batch_size=batch_rows, row_groups=groups, columns=columns):
            yield pa.Table.from_batches([batch])

    def schema(self, f, scan_bytes):
        return parquet_metadata(f.path).schema.to_arrow_schema()

    def splits(self, files, target_rows):
        """Runs of row groups of about ``target_rows`` rows; the row count of every file, from its footer."""
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

    def integers_beyond(self, f, names, limit):
        """By the row-group statistics of the file."""
        found: dict[str, str] = {}
        meta = parquet_metadata(f.path)
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for j in range(group.num_columns):
                column = group.column(j)
                stats = column.statistics
                if column.path_in_schema not in names or stats is None or not stats.has_min_max:
                    continue
                for value in (stats.min, stats.max):
                    if isinstance(value, int) and abs(value) > limit:
                        found.setdefault(column.path_in_schema, str(value))
        return found
