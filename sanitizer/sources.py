"""Finding and reading input shards as Arrow record batches.

Planning happens once, in the launching process, before any pipeline is built:
the input (a file, a directory of shards or a glob; local or any filesystem Beam
knows, such as ``gs://``) is expanded into files, the format is recognised and
the schema is taken from the first file. A missing, empty or corrupt input is
reported here, before anything runs or is published.

Reading happens on workers: each *split* (a Parquet file's row groups, or a
whole CSV / JSON Lines file) is read as record batches. Every batch is conformed
to the planned schema. A value that cannot take the planned type (the string
``"abc"`` in a numeric column) becomes null and is recorded in the internal
``__sanitizer_read_issue`` column, so the row is later quarantined with a reason
instead of failing the run or being silently dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanitizer.errors import InputError
from sanitizer.fs import escape_glob, has_glob, is_remote, static_prefix

EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
READ_ISSUE = "__sanitizer_read_issue"


@dataclass(frozen=True)
class InputFile:
    path: str
    relpath: str
    format: str
    size: int
    mtime: float | None = None  # modification time at planning; checked again before publishing
    aliases: tuple[str, ...] = ()  # other paths that lead to this same file (symlinks, hard links); read once


@dataclass(frozen=True)
class Split:
    """A unit of reading: one file, or a run of a Parquet file's row groups."""

    file_index: int
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0


from sanitizer.fs import filesystems as _filesystems  # noqa: E402


def _format_of(path: str, declared: str) -> str | None:
    if declared != "auto":
        return declared
    return EXTENSIONS.get(os.path.splitext(path)[1].lower())


def discover(input_uri: str, declared_format: str = "auto") -> list[InputFile]:
    """Expand a file, directory or glob into the input files, sorted by path.

    A path that exists literally is read literally, whatever its name holds
    (``inp/set[1]`` is that folder, never ``inp/set1``); anything else is a glob
    (``*`` within a folder, ``**`` across folders, ``[abc]``, ``?``). A folder is
    read recursively, skipping names that start with ``.`` or ``_`` (hidden
    files, ``_SUCCESS`` markers, ``_temporary`` folders); symlinked folders are
    followed, but a symlink cycle is not. One file reached by several paths (a
    symlinked mirror, a hard link) is read once, from its first path; the others
    are listed in ``InputFile.aliases`` so the run can say so.
    """
    if is_remote(input_uri):
        entries, root = _expand_remote(input_uri)
    else:
        entries, root = _expand_local(input_uri)
    files = []
    skipped = []
    for path, size, mtime, aliases in entries:
        name = os.path.basename(path)
        fmt = _format_of(path, declared_format)
        if fmt is None:
            skipped.append(name)
            continue
        rel = os.path.relpath(path, root or os.curdir) if not is_remote(path) else path[len(root):].lstrip("/")
        files.append(InputFile(path=path, relpath=rel or name, format=fmt, size=int(size), mtime=mtime,
                               aliases=tuple(aliases)))
    if not files:
        hint = f" (found only: {', '.join(skipped[:5])})" if skipped else ""
        raise InputError(
            f"input {input_uri!r} matched no .parquet, .csv or .jsonl files{hint}; "
            "pass a file, a directory of shards or a glob such as 'data/*.parquet', or set --format"
        )
    formats = {f.format for f in files}
    if len(formats) > 1:
        raise InputError(
            f"input {input_uri!r} mixes formats ({', '.join(sorted(formats))}); "
            "point --input at shards of one format"
        )
    return files


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))  # hidden files, _SUCCESS markers, _temporary folders


def input_is_literal(input_uri: str) -> bool:
    """Whether ``input_uri`` names an existing file or folder (read as is) rather than a glob."""
    if not is_remote(input_uri):
        return os.path.exists(input_uri)
    if not has_glob(input_uri):
        return True
    fs = _filesystems()
    try:
        return fs.exists(input_uri) or bool(_remote_folder(input_uri, limit=1))
    except Exception:  # noqa: BLE001 - a listing problem is reported by discover
        return False


def _expand_local(input_uri: str):
    """[(path, size, mtime, aliases)] and the root relpaths are taken from, for a local input."""
    if os.path.isdir(input_uri):
        paths, root = _walk(input_uri), input_uri
    elif os.path.isfile(input_uri):
        paths, root = [input_uri], os.path.dirname(input_uri)  # named explicitly: read even if hidden
    elif not os.path.exists(input_uri) and not has_glob(input_uri):
        raise InputError(
            f"input {input_uri!r} does not exist; pass a file, a directory of shards or a glob such as "
            "'data/*.parquet'"
        )
    else:
        pattern = input_uri if os.path.dirname(static_prefix(input_uri)) else os.path.join(os.curdir, input_uri)
        metas = _match(pattern)  # Beam lists the folder before the first glob character: "." for '*.parquet'
        paths = sorted(m.path for m in metas if not _hidden(os.path.basename(m.path)))
        root = _glob_root(pattern)
    return _same_files_once(sorted(paths)), root


def _walk(root: str) -> list[str]:
    """Every file below ``root``, following symlinked folders but never round a cycle."""
    found: list[str] = []

    def visit(folder: str, chain: frozenset) -> None:
        real = os.path.realpath(folder)
        if real in chain:
            return  # a symlink back to a folder we are already inside
        chain = chain | {real}
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"input folder {folder!r} could not be listed ({exc}); check its permissions") from None
        for entry in entries:
            if _hidden(entry.name):
                continue
            if entry.is_dir():
                visit(entry.path, chain)
            elif entry.is_file():
                found.append(entry.path)

    visit(root, frozenset())
    return found


def _same_files_once(paths: list[str]):
    """Group paths that are one file (same device and inode: symlinks, hard links); keep one path each.

    The kept path is the one that is not a symlink, else the first; the rest become its aliases.
    """
    groups: dict[tuple[int, int], list[str]] = {}
    stats = {}
    for path in paths:
        st = os.stat(path)
        stats[path] = st
        groups.setdefault((st.st_dev, st.st_ino), []).append(path)
    entries = []
    for same in groups.values():
        keep = next((p for p in same if os.path.realpath(p) == os.path.abspath(p)), same[0])
        st = stats[keep]
        entries.append((keep, st.st_size, float(st.st_mtime), [p for p in same if p != keep]))
    return sorted(entries)


def _expand_remote(input_uri: str):
    """[(path, size, mtime, aliases)] and the root, for an input on a remote filesystem.

    An existing object is read as is; else the objects below the prefix ("folder");
    else, when the path holds glob characters, what the glob matches.
    """
    fs = _filesystems()
    try:
        if not input_uri.endswith("/") and fs.exists(input_uri):
            metas = [fs.get_filesystem(input_uri).metadata(input_uri)]
            root = input_uri.rsplit("/", 1)[0]
        else:
            metas = _remote_folder(input_uri)
            root = input_uri.rstrip("/")
            if not metas and has_glob(input_uri):
                metas = [m for m in _match(input_uri) if not _hidden(m.path.rsplit("/", 1)[-1])]
                root = _glob_root(input_uri)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"input {input_uri!r} could not be listed: {exc}") from None
    metas = sorted(metas, key=lambda m: m.path)
    return [(m.path, m.size_in_bytes, getattr(m, "last_updated_in_seconds", None), []) for m in metas], root


def _remote_folder(input_uri: str, limit: int | None = None):
    """The files below a remote "folder" (an object prefix), read literally, hidden names skipped."""
    prefix = input_uri.rstrip("/")
    metas = _filesystems().match([escape_glob(prefix) + "/**"], limits=[limit])[0].metadata_list
    return [m for m in metas if not any(_hidden(part) for part in m.path[len(prefix) + 1:].split("/"))]


def _match(pattern: str):
    try:
        return list(_filesystems().match([pattern])[0].metadata_list)
    except Exception as exc:
        raise InputError(f"input {pattern!r} could not be listed: {exc}") from None


def _glob_root(pattern: str) -> str:
    static = static_prefix(pattern)
    return static if static.endswith("/") else os.path.dirname(static)


def _open(path: str):
    return _filesystems().open(path)


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


def read_schema(f: InputFile) -> pa.Schema:
    """The schema of one input file, as the reader will produce it."""
    if f.format == "parquet":
        return parquet_metadata(f.path).schema.to_arrow_schema()
    for batch in iter_file_batches(f, batch_rows=4096, schema=None):
        return batch.schema
    raise InputError(f"input file {f.path!r} has no header or no rows; remove it or add data")


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
                yield from _rebatch(_csv_reader(fh, schema), batch_rows, schema, f, columns)
            else:
                table = _read_jsonl(fh.read(), f.path)
                yield from _rebatch(table.to_batches(max_chunksize=batch_rows), batch_rows, schema, f, columns)
    except InputError:
        raise
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(
            f"input file {f.path!r} could not be read as {f.format} ({exc}); fix or remove the file and run again"
        ) from None


# "nan" is deliberately not a null marker: a NaN feature is quarantined as invalid:nan, not as a null.
CSV_NULLS = ["", "NULL", "null", "NA", "N/A", "#N/A", "None"]


def _csv_reader(fh, schema: pa.Schema | None):
    """A streaming CSV reader.

    With a planned schema every column is read as text and cast batch by batch
    in ``_conform``, so a value that does not fit its column (``"abc"`` deep
    inside a numeric column) quarantines that row instead of failing the file;
    type inference from the first block alone cannot promise that.
    """
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(null_values=CSV_NULLS, strings_can_be_null=True)
    if schema is not None:
        convert = pcsv.ConvertOptions(
            null_values=CSV_NULLS,
            strings_can_be_null=True,
            column_types={name: pa.string() for name in schema.names},
        )
    return pcsv.open_csv(fh, read_options=pcsv.ReadOptions(block_size=1 << 22), convert_options=convert)


def _read_jsonl(data: bytes, path: str) -> pa.Table:
    """JSON Lines -> Arrow. pyarrow's fast reader first; when it cannot settle on one type per
    field (a number in one line, text in another) the file is parsed line by line and such a
    field is kept as text, so ``_conform`` can quarantine the values that do not fit."""
    import pyarrow.json as pjson

    try:
        return pjson.read_json(pa.BufferReader(data), read_options=pjson.ReadOptions(block_size=1 << 24))
    except pa.ArrowInvalid:
        pass
    rows = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
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
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
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


def _cast_column(col: pa.ChunkedArray, field: pa.Field, issues: np.ndarray) -> pa.ChunkedArray:
    try:
        return pc.cast(col, field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type)):
        raise InputError(
            f"column {field.name!r} holds values that cannot be read as {field.type} "
            f"(the type it has in the first shard; here it reads as {col.type}); make the shards agree"
        )
    parsed, bad, null = parse_numbers(col)
    if bad.any():
        text = pc.cast(col, pa.string()).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(bad):
            issue = json.dumps({"code": f"invalid:non_numeric:{field.name}", "column": field.name, "value": text[i]})
            issues[i] = issue if issues[i] is None else issues[i] + "\n" + issue
    mask = bad | null
    if pa.types.is_integer(field.type) and not np.all(mask | (parsed == np.round(parsed))):
        raise InputError(
            f"column {field.name!r} holds fractional values where the first shard has integers; "
            "make the shards agree or cast the column to float"
        )
    arr = pa.array(np.where(mask, 0, parsed), mask=mask).cast(field.type)
    return pa.chunked_array([arr])
