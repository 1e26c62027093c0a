"""Finding the input: a file, a directory of shards or a glob, on any filesystem Beam knows.

Planning happens once, where the pipeline is built: the input is expanded into
files (escaped globs, real paths, a file reached twice read once) and each
file's format is recognised. A missing or empty input is reported here, before
anything runs or is published.
"""


import os
from dataclasses import dataclass

from sanitizer.errors import InputError
from sanitizer.fs import escape_glob, has_glob, is_remote, static_prefix
from sanitizer.fs import filesystems as _filesystems

EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


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
