"""What a reader is: the contract every input format fulfils, and the helpers readers share.

A reader turns one input file into Arrow tables of at most ``batch_rows`` rows, as the file holds
its values (``sanitizer.io.sources`` then conforms each table to the planned schema). It also
says how the run should treat its files: whether they declare their column types, whether their
values arrive as text to be typed by the plan, whether a column can be read alone, and how a
file is cut into units of reading (:class:`Split`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from sanitizer.errors import InputError
from sanitizer.io.input_rules import open_input

READ_ERRORS = (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError)
"""What a reader raises on a file it cannot read; the run reports it as one ``InputError`` naming the file."""


@dataclass(frozen=True)
class Split:
    """A unit of reading: one file, or a run of a file's row groups (Parquet)."""

    file_index: int
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0


class Reader:
    """One input format. Subclass it, set the class attributes, implement :meth:`read`, and register
    an instance (``sanitizer.io.readers.register_reader``).

    ``f`` below is a :class:`sanitizer.io.discover.InputFile` (``f.path``, ``f.format``, ``f.size``).
    """

    name: ClassVar[str]
    """The ``--format`` value and the ``format`` recorded for each input file (``parquet``)."""
    title: ClassVar[str]
    """How help texts name the format (``Parquet``)."""
    extensions: ClassVar[tuple[str, ...]]
    """File extensions read as this format, lower case with the dot; messages name the first."""
    compressed: ClassVar[bool] = False
    """Whether a file may also carry a compression suffix (``.csv.gz``, ``.jsonl.zst``: ``input_rules.COMPRESSIONS``),
    decompressed as it is read. A reader that says no refuses such a file with :attr:`uncompressed_only`."""
    uncompressed_only: ClassVar[str] = ""
    """Why a compressed file of this format is refused (shown in parentheses after "compressed TITLE")."""
    declares_types: ClassVar[bool] = False
    """The file declares its column types (Parquet). Otherwise types are settled from the values read,
    and a column empty in the first rows (type ``null``) is kept as text."""
    values_as_text: ClassVar[bool] = False
    """Every value is read as the text it is written as (CSV); the plan types the columns where every
    value round-trips (``sanitizer.data.value_types``), and shards disagreeing on a type unify as text."""
    columnar: ClassVar[bool] = False
    """A chosen column can be read without the rest of the file, so the plan reads whole columns
    (label and id text, id uniqueness) however large the input is."""
    decodes_text: ClassVar[bool] = False
    """The reader refuses text that is not UTF-8 itself, so the plan need not read the label and id
    columns whole to check them."""

    def read(self, fh, f, batch_rows: int, split: Split | None, columns: list[str] | None) -> Iterator[pa.Table]:
        """Tables of at most ``batch_rows`` rows from the open binary file ``fh`` (decompressed already),
        as the file holds its values; only ``columns`` when given (:func:`rebatch` does both)."""
        raise NotImplementedError

    def schema(self, f, scan_bytes: int) -> pa.Schema:
        """The file's schema as :meth:`read` produces it (by default: its first table's)."""
        for table in read_tables(self, f, batch_rows=4096):
            return table.schema
        raise InputError(f"input file {f.path!r} has no header or no rows; remove it or add data")

    def splits(self, files: list, target_rows: int) -> tuple[list[Split], dict[int, int] | None]:
        """The units of reading of ``files`` (about ``target_rows`` rows each where the format can cut a
        file) and the row count of each file when known up front; by default one split per file."""
        return [Split(i) for i in range(len(files))], None

    def integers_beyond(self, f, names: list[str], limit: int) -> dict[str, str]:
        """Column -> a value beyond +-``limit``, among ``names``, known without reading the rows (Parquet's
        row-group statistics); by default nothing is known."""
        return {}


def read_tables(reader: Reader, f, batch_rows: int, split: Split | None = None, columns: list[str] | None = None,
                conform=pa.Table.combine_chunks) -> Iterator[pa.Table]:
    """``conform(table)`` for each table ``reader`` reads from ``f``; a file it cannot read is refused
    with one ``InputError`` naming the file and the format."""
    try:
        with open_input(f.path) as fh:  # decompressed by suffix (.csv.gz): sanitizer.io.input_rules
            for table in reader.read(fh, f, batch_rows, split, columns):
                yield conform(table)
    except InputError:
        raise
    except READ_ERRORS as exc:
        raise InputError(
            f"input file {f.path!r} could not be read as {f.format} ({exc}); fix or remove the file and run again"
        ) from None


def rebatch(batches, batch_rows: int, columns: list[str] | None) -> Iterator[pa.Table]:
    """Record batches of any size -> tables of ``batch_rows`` rows (the last one shorter), ``columns`` only."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= batch_rows:
            table = pa.Table.from_batches(pending)
            head, tail = table.slice(0, batch_rows), table.slice(batch_rows)
            yield _select(head, columns)
            pending = tail.to_batches()
            pending_rows = tail.num_rows
    if pending_rows:
        yield _select(pa.Table.from_batches(pending), columns)


def _select(table: pa.Table, columns):
    if columns is None:
        return table
    present = set(table.column_names)
    missing = [c for c in columns if c not in present]
    if missing:
        return table  # sources._conform reports the missing columns with the file name
    return table.select(columns)


def check_unique_columns(names: list[str], path: str) -> None:
    """Refuse a file whose columns share a name: which of them a reader picks is undefined."""
    duplicated = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicated:
        raise InputError(
            f"input file {path!r} has more than one column named {', '.join(map(repr, duplicated))}; "
            "give every column a unique name"
        )
