"""CSV: every value read as the text it is written as; the plan types the columns
(``sanitizer.data.value_types``: only where every value writes back unchanged)."""

from __future__ import annotations

import pyarrow as pa

from sanitizer.data.value_types import TypeScan
from sanitizer.errors import InputError
from sanitizer.io.input_rules import open_input
from sanitizer.io.readers.base import Reader, check_unique_columns, read_tables, rebatch

CSV_NULLS = [""]
"""Only an empty field is null: ``NA``, ``None`` or ``NULL`` are text as written (a numeric feature
reads them as missing values, see ``sanitizer.data.batch.MISSING_WORDS``)."""

BLOCK_SIZE = 1 << 22


class CsvReader(Reader):
    name = "csv"
    title = "CSV"
    extensions = (".csv",)
    compressed = True
    values_as_text = True
    decodes_text = True

    def read(self, fh, f, batch_rows, split, columns):
        yield from rebatch(_csv_reader(fh, _csv_names(f)), batch_rows, columns)

    def schema(self, f, scan_bytes):
        """The column types that hold every value exactly as written (``sanitizer.data.value_types``),
        settled over the file's first ``scan_bytes`` (at least one block)."""
        scan = None
        seen = 0
        for table in read_tables(self, f, batch_rows=65_536):
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


def _csv_names(f) -> list[str]:
    import pyarrow.csv as pcsv

    with open_input(f.path) as fh:
        return pcsv.open_csv(fh, read_options=pcsv.ReadOptions(block_size=BLOCK_SIZE)).schema.names


def _csv_reader(fh, names: list[str]):
    """A streaming CSV reader that reads every column as text (an empty field as null).

    Types are settled by ``sanitizer.data.value_types`` and applied batch by batch by
    ``sanitizer.io.sources``, so a value its column's type cannot hold as written (``"abc"`` or
    ``"02134"`` deep inside an integer column) quarantines that row instead of failing the file or
    changing the value.
    """
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(
        null_values=CSV_NULLS,
        strings_can_be_null=True,
        column_types={name: pa.string() for name in names},
    )
    return pcsv.open_csv(fh, read_options=pcsv.ReadOptions(block_size=BLOCK_SIZE), convert_options=convert)
