"""Finding the input: a file, a directory of shards or a glob, on any filesystem Beam knows.

Planning happens once, where the pipeline is built: the input is expanded into
files (escaped globs, real paths, a file reached twice read once) and each
file's format is recognised. Every file under an input folder (or matched by a
glob) is either read or listed as skipped with the reason (:class:`Skipped`);
which, and why, is ``sanitizer.io.input_rules``. A missing or empty input, or a
file of no known format beside data files, is reported here, before anything
runs or is published.
"""


import os
from dataclasses import dataclass

from sanitizer.errors import InputError
from sanitizer.io.fs import escape_glob, has_glob, is_remote, static_prefix
from sanitizer.io.fs import filesystems as _filesystems
from sanitizer.io.input_rules import Skipped, folder_reason, conventional_skip, ignored_by
from sanitizer.io.readers import extensions_named, format_names, format_of


@dataclass(frozen=True)
class InputFile:
    path: str
    relpath: str
    format: str
    size: int
    mtime: float | None = None  # modification time at planning; checked again before publishing
    aliases: tuple[str, ...] = ()  # other paths that lead to this same file (symlinks, hard links); read once


@dataclass(frozen=True)
class Discovery:
    """What an input expands to: the files read and the files skipped (sorted by path)."""

    files: list[InputFile]
    skipped: list[Skipped]


def discover(input_uri: str, declared_format: str = "auto", ignore=()) -> list[InputFile]:
    """The input files to read (``survey(...).files``)."""
    return survey(input_uri, declared_format, ignore).files


def survey(input_uri: str, declared_format: str = "auto", ignore=()) -> Discovery:
    """Expand a file, directory or glob into the files to read and the files skipped, sorted by path.

    A path that exists literally is read literally, whatever its name holds
    (``inp/set[1]`` is that folder, never ``inp/set1``); anything else is a glob
    (``*`` within a folder, ``**`` across folders, ``[abc]``, ``?``). A folder is
    read recursively; symlinked folders are followed, but a symlink cycle is
    not. Which files are read, skipped or refused: the module docstring. A file
    named on its own is read whatever its name (no convention or pattern
    applies). One file reached by several paths (a symlinked mirror, a hard
    link) is read once, from its first path; the others are listed in
    ``InputFile.aliases`` so the run can say so.
    """
    remote = is_remote(input_uri)
    expanded = _expand_remote(input_uri) if remote else _expand_local(input_uri)
    root = expanded.root
    skipped = list(expanded.folders)
    kept: list[str] = []
    formats: dict[str, str] = {}
    unknown: list[tuple[str, str]] = []
    for path in expanded.paths:
        rel = _relpath(path, root)
        convention = None if expanded.single else conventional_skip(rel)
        if convention is not None:
            reason, skipped_rel = convention
            if skipped_rel.endswith("/"):  # inside a skipped folder (a glob reached it): the folder is listed
                skipped.append(Skipped(_join(root, skipped_rel), skipped_rel, reason, 1))
            else:
                skipped.append(Skipped(path, rel, reason))
            continue
        pattern = None if expanded.single else ignored_by(rel, ignore)
        if pattern is not None:
            skipped.append(Skipped(path, rel, f"ignored by pattern {pattern!r}"))
            continue
        fmt, why = format_of(path, declared_format)
        if fmt is None:
            unknown.append((rel, why))
        else:
            kept.append(path)
            formats[path] = fmt
    skipped = _merge_folders(skipped)
    if unknown and kept:
        named = ", ".join(f"{rel!r} ({why})" for rel, why in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise InputError(
            f"input {input_uri!r} holds file(s) the run cannot read beside its data files: {named}{more}; "
            f"name their format with --format {'|'.join(format_names())} (every file not skipped is then read as "
            "that format), or leave them out with --ignore PATTERN (config 'ignore'), e.g. "
            f"--ignore {_name(unknown[0][0])!r}"
        )
    if not kept:
        seen = [rel for rel, _ in unknown] + [s.relpath for s in skipped]
        hint = f" (found only: {', '.join(map(repr, seen[:5]))}{' ...' if len(seen) > 5 else ''})" if seen else ""
        why = "".join(f"; {rel!r}: {w}" for rel, w in unknown[:1] if w != "no known format")
        raise InputError(
            f"input {input_uri!r} matched no {extensions_named()} files{hint}{why}; "
            "pass a file, a directory of shards or a glob such as 'data/*.parquet', or set --format"
        )
    if len(set(formats.values())) > 1:
        example = {fmt: _relpath(path, root) for path, fmt in sorted(formats.items(), reverse=True)}
        named = ", ".join(f"{fmt} ({rel!r})" for fmt, rel in sorted(example.items()))
        raise InputError(
            f"input {input_uri!r} mixes formats: {named}; "
            "point --input at shards of one format, or leave the others out with --ignore PATTERN"
        )
    entries = expanded.entries(kept)
    files = [InputFile(path=path, relpath=_relpath(path, root) or _name(path), format=formats[path],
                       size=int(size), mtime=mtime, aliases=tuple(aliases))
             for path, size, mtime, aliases in entries]
    return Discovery(files, sorted(skipped, key=lambda s: s.relpath))


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _relpath(path: str, root: str) -> str:
    """``path`` relative to the input root, with ``/`` separators."""
    if is_remote(path):
        return path[len(root):].lstrip("/") if root and path.startswith(root) else _name(path)
    return os.path.relpath(path, root or os.curdir).replace(os.sep, "/")


def _join(root: str, rel: str) -> str:
    if not root:
        return rel
    return root.rstrip("/") + "/" + rel if is_remote(root) else os.path.join(root, rel)


def _merge_folders(skipped: list[Skipped]) -> list[Skipped]:
    """One entry per skipped folder (a glob lists each file inside it), its file counts summed."""
    out: dict[str, Skipped] = {}
    for s in skipped:
        prior = out.get(s.relpath)
        if prior is not None and s.relpath.endswith("/"):
            total = None if prior.files is None or s.files is None else prior.files + s.files
            s = Skipped(prior.uri, prior.relpath, prior.reason, total)
        out[s.relpath] = s
    return list(out.values())


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


@dataclass
class _Expanded:
    """What an input path expands to, before any file is classified."""

    paths: list[str]  # every file found (local: not yet grouped by identity)
    root: str  # relpaths are taken from here
    folders: list[Skipped]  # folders skipped whole, without looking inside (local walks)
    single: bool = False  # the input named one file
    metas: dict | None = None  # remote: path -> (size, mtime)

    def entries(self, paths: list[str]):
        """[(path, size, mtime, aliases)] of the files to read, sorted by path."""
        if self.metas is None:
            return _same_files_once(paths)
        return sorted((p, *self.metas[p], []) for p in paths)


def _expand_local(input_uri: str) -> _Expanded:
    if os.path.isdir(input_uri):
        paths, folders = _walk(input_uri)
        return _Expanded(paths, input_uri, folders)
    if os.path.isfile(input_uri):
        return _Expanded([input_uri], os.path.dirname(input_uri), [], single=True)  # read even if hidden
    if not os.path.exists(input_uri) and not has_glob(input_uri):
        raise InputError(
            f"input {input_uri!r} does not exist; pass a file, a directory of shards or a glob such as "
            "'data/*.parquet'"
        )
    pattern = input_uri if os.path.dirname(static_prefix(input_uri)) else os.path.join(os.curdir, input_uri)
    metas = _match(pattern)  # Beam lists the folder before the first glob character: "." for '*.parquet'
    return _Expanded(sorted(m.path for m in metas), _glob_root(pattern), [])


def _walk(root: str) -> tuple[list[str], list[Skipped]]:
    """Every file below ``root``, following symlinked folders but never round a cycle; and the folders
    skipped whole by convention (rule 1), each with the number of files it holds."""
    found: list[str] = []
    folders: list[Skipped] = []

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
            if entry.is_dir():
                reason = folder_reason(entry.name)
                if reason is None:
                    visit(entry.path, chain)
                else:
                    rel = _relpath(entry.path, root) + "/"
                    folders.append(Skipped(_join(root, rel), rel, reason, _count_files(entry.path)))
            elif entry.is_file():
                found.append(entry.path)

    visit(root, frozenset())
    return found, folders


def _count_files(folder: str) -> int | None:
    """How many files lie below a skipped folder (symlinks not followed), or None when it cannot be listed."""
    count = 0
    try:
        for _, _, names in os.walk(folder, onerror=_raise):
            count += len(names)
    except OSError:
        return None
    return count


def _raise(exc: OSError) -> None:
    raise exc


def _same_files_once(paths: list[str]):
    """Group paths that are one file (same device and inode: symlinks, hard links); keep one path each.

    The kept path is the one that is not a symlink, else the first; the rest become its aliases.
    """
    groups: dict[tuple[int, int], list[str]] = {}
    stats = {}
    for path in sorted(paths):
        st = os.stat(path)
        stats[path] = st
        groups.setdefault((st.st_dev, st.st_ino), []).append(path)
    entries = []
    for same in groups.values():
        keep = next((p for p in same if os.path.realpath(p) == os.path.abspath(p)), same[0])
        st = stats[keep]
        entries.append((keep, st.st_size, float(st.st_mtime), [p for p in same if p != keep]))
    return sorted(entries)


def _expand_remote(input_uri: str) -> _Expanded:
    """An input on a remote filesystem: an existing object is read as is; else the objects below the
    prefix ("folder"); else, when the path holds glob characters, what the glob matches."""
    fs = _filesystems()
    single = False
    try:
        if not input_uri.endswith("/") and fs.exists(input_uri):
            metas = [fs.get_filesystem(input_uri).metadata(input_uri)]
            root, single = input_uri.rsplit("/", 1)[0], True
        else:
            metas = _remote_folder(input_uri)
            root = input_uri.rstrip("/")
            if not metas and has_glob(input_uri):
                metas = _match(input_uri)
                root = _glob_root(input_uri)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"input {input_uri!r} could not be listed: {exc}") from None
    found = {m.path: (m.size_in_bytes, getattr(m, "last_updated_in_seconds", None)) for m in metas}
    return _Expanded(sorted(found), root, [], single=single, metas=found)


def _remote_folder(input_uri: str, limit: int | None = None):
    """Every object below a remote "folder" (an object prefix), read literally; ``survey`` classifies them."""
    prefix = input_uri.rstrip("/")
    return list(_filesystems().match([escape_glob(prefix) + "/**"], limits=[limit])[0].metadata_list)


def _match(pattern: str):
    try:
        return list(_filesystems().match([pattern])[0].metadata_list)
    except Exception as exc:
        raise InputError(f"input {pattern!r} could not be listed: {exc}") from None


def _glob_root(pattern: str) -> str:
    static = static_prefix(pattern)
    return static if static.endswith("/") else os.path.dirname(static)
