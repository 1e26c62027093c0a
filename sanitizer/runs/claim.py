"""Claiming an output folder before a run writes there, and refusing paths Beam would misread.

Runs where the pipeline is built (the launcher, or ``Sanitize.expand`` in a
user's pipeline), before anything is submitted: a run that cannot start
deletes and writes nothing.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from datetime import datetime, timezone

from sanitizer.io import fs as fs_util
from sanitizer.data import layout
from sanitizer.runs import provenance as prov
from sanitizer.errors import ConfigError, InputError, SanitizerError
from sanitizer.io.discover import input_is_literal

log = logging.getLogger("sanitizer")


_fs = fs_util.filesystems


MARKER = layout.MARKER
_OUR_FILES = (layout.MANIFEST, layout.PROVENANCE, layout.REPORT, layout.LINEAGE, MARKER)
_OUR_FOLDERS = ("_work", layout.VALIDATION_DIR)  # an older release's work folder, GX results: only our files go
_OUR_INSIDE = {  # what a run writes in each of them (a trailing / marks a folder)
    "_work": {"fit.json", "validation_sample.json", "stats.json", "duplicate_ids.json", "file_rows.json"},
    layout.VALIDATION_DIR: {"summary.json", "input_sample.json", "clean_output.json", "totals.json", "input_columns.json",
                            "checkpoint_result.json", "data_docs/"},
}
_TEMPORARY = re.compile(r"\.(.+)\.[0-9a-f]{32}\.tmp")  # fs.write_bytes_atomic's temporary names
_SHARD_FOLDERS = (layout.CLEAN_DIR, layout.QUARANTINE_DIR)
_SHARD_NAME = re.compile(r"part-\d{5}-of-\d{5}\.parquet")  # the sinks' names (shard_name_template)
_TEMP_FOLDER = re.compile(r"beam-temp-part-[0-9a-f]{32}")  # Beam's sink staging folders, left by a killed run
WRITE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT)


def check_paths(input_uri: str, out: str, files=()) -> None:
    """Refuse, before anything is written or deleted, an output Beam would misread or that overlaps the input.

    * glob characters in ``out``: Beam's file sinks match ``OUT/clean/part*`` when
      they finalise, so ``run[1]`` would delete the shards of a sibling ``run1``;
    * ``out`` inside a folder that is read as input: the next run would read its
      own output, and ``--overwrite`` would delete input;
    * an input (file, folder or any file it expands to) inside ``out``, or an input
      glob that matches ``out`` or the files a run writes there.

    Called before planning reads anything (``files`` empty), and again with the
    planned files.
    """
    fs_util.check_output_path(out)
    out_key = fs_util.normalise(out)
    literal = input_is_literal(input_uri)
    if literal:
        in_key = fs_util.normalise(input_uri)
        if _is_folder(input_uri) and fs_util.is_inside(out_key, in_key):
            raise ConfigError(
                f"output {out!r} is inside the input folder {input_uri!r}: a run would read its own output "
                f"next time and --overwrite would delete input; choose an --output outside {input_uri!r}"
            )
        if fs_util.is_inside(in_key, out_key):
            raise ConfigError(
                f"input {input_uri!r} is inside the output folder {out!r}, which a run writes and --overwrite "
                f"clears; move the input out of {out!r} or choose another --output"
            )
    for f in files:
        for path in (f.path, *f.aliases):
            if fs_util.is_inside(fs_util.normalise(path), out_key):
                raise ConfigError(
                    f"input file {path!r} is inside the output folder {out!r}, which a run writes and --overwrite "
                    f"clears; move the input out of {out!r} or choose another --output"
                )
    if not literal:
        regex = fs_util.pattern_regex(input_uri if fs_util.is_remote(input_uri) else os.path.abspath(input_uri))
        bases = {out.rstrip("/")} if fs_util.is_remote(out) else {os.path.abspath(out), out_key}
        for base in sorted(bases):
            for probe in (base, *(f"{base}/{name}" for name in _PROBES)):
                if regex.match(probe):
                    raise ConfigError(
                        f"input glob {input_uri!r} also matches the output folder {out!r} (e.g. {probe}); a run "
                        "would read its own output. Narrow the glob or choose an --output it cannot match"
                    )


def _is_folder(path: str) -> bool:
    if not fs_util.is_remote(path):
        return os.path.isdir(path)
    return not _fs().exists(path)  # an object prefix


_PROBES = ("clean/part-00000-of-00001.parquet", "quarantine/part-00000-of-00001.parquet", layout.MANIFEST,
           layout.PROVENANCE, "lineage.json", "report.html", "_work/stats.json", "validation/summary.json",
           "review/decisions.jsonl", "review/decisions/20260101T000000Z-0.jsonl",
           "clean/part-released-0.parquet")


def input_warnings(files) -> list[str]:
    """One warning for input files reached by more than one path (read once each, as discover decided)."""
    pairs = [(alias, f.path) for f in files for alias in f.aliases]
    if not pairs:
        return []
    named = "; ".join(f"{a!r} is the same file as {p!r}" for a, p in pairs[:5])
    more = f" (and {len(pairs) - 5} more)" if len(pairs) > 5 else ""
    return [f"{len(pairs)} input path(s) lead to files already read through another path (symlinks or hard "
            f"links), so each file was read once: {named}{more}"]


def check_identical_inputs(inputs: list[dict]) -> None:
    """Refuse two different input files with the same bytes: their rows would count twice."""
    first: dict[str, str] = {}
    for item in inputs:
        if item["bytes"] == 0:
            continue
        other = first.setdefault(item["sha256"], item["uri"])
        if other != item["uri"]:
            raise InputError(
                f"input files {other!r} and {item['uri']!r} are identical (sha256 {item['sha256'][:16]}...), so "
                "their rows would be read twice; remove the copy or narrow --input"
            )


def check_identical_files(files) -> None:
    """Refuse, before anything is written, two different input files with the same bytes (their rows would
    count twice). Only files of equal size are hashed here - copies have equal sizes, and a launcher should not
    read the whole input; the job's own input hashes check every file again at publication."""
    by_size: dict[int, list] = {}
    for f in files:
        if f.size:
            by_size.setdefault(f.size, []).append(f)
    same = [f for group in by_size.values() if len(group) > 1 for f in group]
    inputs = []
    for f in same:
        try:
            sha, size = fs_util.sha256_of(f.path)
        except OSError:
            continue  # unreadable: the job names it when it reads the file
        inputs.append({"uri": f.path, "bytes": size, "sha256": sha})
    check_identical_inputs(inputs)


def write_failure(out: str, exc) -> SanitizerError:
    return SanitizerError(
        f"could not write to {out}: {exc}; free space or choose another --output (nothing was published)"
    )


def is_write_error(exc: OSError, out: str) -> bool:
    """An OSError about the output: a full disk / quota / read-only filesystem, or a path inside ``out``."""
    if exc.errno in WRITE_ERRNOS:
        return True
    name = getattr(exc, "filename", None)
    return name is not None and fs_util.is_inside(fs_util.normalise(str(name)), fs_util.normalise(out))


def _read_record(path: str, keys: tuple[str, ...]):
    """A JSON object of ours at ``path`` (it has every key in ``keys``), None if absent; False if foreign."""
    fs = _fs()
    if not fs.exists(path):
        return None
    try:
        with fs.open(path) as fh:
            record = json.loads(fh.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return False
    return record if isinstance(record, dict) and all(k in record for k in keys) else False


def _list_names(folder: str) -> list[tuple[str, bool]]:
    """(name, is_folder) of each entry directly inside ``folder``, on any filesystem."""
    if not fs_util.is_remote(folder):
        if not os.path.isdir(folder):
            return []
        return sorted((e.name, e.is_dir(follow_symlinks=False)) for e in os.scandir(folder))
    metas = _fs().match([fs_util.escape_glob(folder.rstrip("/")) + "/**"])[0].metadata_list
    names: dict[str, bool] = {}
    for m in metas:
        rest = m.path[len(folder.rstrip("/")) + 1:]
        head, _, tail = rest.partition("/")
        names[head] = names.get(head, False) or bool(tail)
    return sorted(names.items())


def _exists(path: str) -> bool:
    """Whether anything is at ``path`` (locally a dangling symlink counts too)."""
    return os.path.lexists(path) if not fs_util.is_remote(path) else _fs().exists(path)


def _owned_paths(out: str, present: list[str]) -> list[str]:
    """What an earlier run of ours wrote in ``out`` (manifest first), or a ConfigError saying why not.

    Proof of ownership is a manifest, a provenance record or a run marker of ours.
    Inside clean/ and quarantine/ every entry must be named by one of our records
    (the manifest, superseded ``manifest-*.json``, provenance outputs,
    ``review/publication-*.json``), be a Beam staging folder, or - for a run that
    was interrupted (its marker is there) - carry our shard name. Anything else
    is the user's: nothing is deleted. ``review/`` is never deleted: it holds
    reviewers' decisions, which outlive a rerun (``--decisions`` reads them).
    In ``validation/`` and ``_work/`` only the files a run writes there go
    (:func:`_ours_inside`); anything else in them is left where it is.
    """
    fs = _fs()
    manifest = _read_record(f"{out}/{layout.MANIFEST}", ("manifest_version", "run_id", "clean"))
    provenance = _read_record(f"{out}/{layout.PROVENANCE}", ("run_id", "outputs"))
    marker = _read_record(f"{out}/{MARKER}", ("sanitizer_run",))
    foreign = [name for name, rec in ((layout.MANIFEST, manifest), (layout.PROVENANCE, provenance), (MARKER, marker))
               if rec is False]
    if not (manifest or provenance or marker):
        raise ConfigError(
            f"output {out!r} holds {', '.join(present)} but no sanitize run (no manifest.json, provenance.json "
            "or run marker of ours), so --overwrite deletes nothing there; choose another --output or move "
            "those files away"
        )
    superseded = []
    for m in fs.match([fs_util.escape_glob(out) + "/manifest-*.json"])[0].metadata_list:
        rec = _read_record(m.path, ("manifest_version", "run_id", "clean"))
        (superseded.append((m.path, rec)) if rec else foreign.append(prov.relative(m.path, out)))
    publications = []
    for m in fs.match([fs_util.escape_glob(out) + "/review/publication-*.json"])[0].metadata_list:
        rec = _read_record(m.path, ("publication_id", "outputs"))
        if rec:
            publications.append(rec)

    named: set[str] = set()
    for rec in [manifest] + [r for _, r in superseded]:
        for part in _SHARD_FOLDERS:
            named.update(s.get("path") for s in ((rec or {}).get(part) or {}).get("shards", []))
    for part in _SHARD_FOLDERS:
        named.update(s.get("path") for s in ((provenance or {}).get("outputs") or {}).get(part, []))
    for rec in publications:
        outputs = rec.get("outputs") or {}
        named.update(s.get("path") for s in outputs.get("clean", []) if isinstance(s, dict))
        if isinstance(outputs.get("released_shard"), dict):
            named.add(outputs["released_shard"].get("path"))
    for part in _SHARD_FOLDERS:
        if not fs_util.is_remote(out) and os.path.islink(f"{out}/{part}"):
            continue  # a link at our folder's name: the link goes, never what it points to
        for name, is_folder in _list_names(f"{out}/{part}"):
            rel = f"{part}/{name}"
            if rel in named and not is_folder:
                continue
            if is_folder and _TEMP_FOLDER.fullmatch(name):
                continue
            if marker and not is_folder and _SHARD_NAME.fullmatch(name):
                continue
            foreign.append(rel + ("/" if is_folder else ""))
    if foreign:
        listed = ", ".join(foreign[:8]) + (f" (and {len(foreign) - 8} more)" if len(foreign) > 8 else "")
        raise ConfigError(
            f"output {out!r} holds {listed}, which no sanitize run of ours wrote (its manifest, provenance and "
            "publication records do not name them), so --overwrite deletes nothing; move them out of "
            f"{out!r} or choose another --output"
        )
    doomed = [f"{out}/{layout.MANIFEST}"] + [p for p, _ in superseded]
    doomed += [f"{out}/{name}{tmp}" for name in _OUR_FILES for tmp in ("", ".tmp") if name != layout.MANIFEST or tmp]
    doomed += [f"{out}/{name}" for name, _ in _list_names(out)
               if _TEMPORARY.fullmatch(name) and _TEMPORARY.fullmatch(name).group(1) in _OUR_FILES]
    doomed += [f"{out}/{name}" for name in _SHARD_FOLDERS]
    for folder in _OUR_FOLDERS:
        doomed += _ours_inside(out, folder)
    return doomed


def _ours_inside(out: str, folder: str) -> list[str]:
    """The paths a run writes in ``OUT/folder`` (validation/, _work/) that exist; the rest is left, with a
    warning naming it. A symbolic link at the folder's own name is itself what goes (never its target)."""
    base = f"{out}/{folder}"
    if not fs_util.is_remote(out) and os.path.islink(base):
        return [base]
    wanted = _OUR_INSIDE[folder]
    ours, kept = [], []
    for name, is_folder in _list_names(base):
        temporary = _TEMPORARY.fullmatch(name)
        plain = temporary.group(1) if temporary else name.removesuffix(".tmp")
        mine = f"{name}/" in wanted if is_folder else plain in wanted
        (ours if mine else kept).append(name)
    if not kept:
        return [base]
    log.warning("--overwrite leaves %s in %s/%s: no run writes them there", ", ".join(kept[:8])
                + (f" (and {len(kept) - 8} more)" if len(kept) > 8 else ""), out, folder)
    return [f"{base}/{name}" for name in ours]


def _first_run_conflicts(out: str) -> list[str]:
    """What a first run into ``out`` would overwrite or write into: our file and folder names that exist."""
    names = [layout.MANIFEST, layout.PROVENANCE, layout.REPORT, layout.LINEAGE, "clean", "quarantine", "_work",
             layout.VALIDATION_DIR, MARKER]
    present = [p for p in names if _exists(f"{out}/{p}")]
    present += [prov.relative(m.path, out)
                for m in _fs().match([fs_util.escape_glob(out) + "/manifest-*.json"])[0].metadata_list]
    return present


def _delete(path: str) -> None:
    """Remove one path of ours: locally a file or symbolic link is unlinked (a link's target is never
    touched) and a real folder removed with everything in it; elsewhere through Beam's filesystems."""
    if fs_util.is_remote(path):
        if _fs().exists(path):
            _fs().delete([path])
        return
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def prepare_output(out: str, overwrite: bool) -> None:
    """Claim ``out`` for this run; with overwrite, first remove the earlier run of ours (manifest goes first).

    Refuses (ConfigError, nothing deleted) a folder that holds a run, or any file
    a run would overwrite or write into (``report.html``, ``lineage.json``,
    ``validation/``...), without ``overwrite``; and with it anything
    :func:`_owned_paths` cannot prove a run of ours wrote. The run marker is
    written before anything is deleted, so a run killed at any point leaves a
    folder the next ``--overwrite`` recognises. Called under the output lock
    (:mod:`sanitizer.runs.output_lock`).
    """
    present = _first_run_conflicts(out)
    if present and not overwrite:
        if {layout.MANIFEST, layout.PROVENANCE, MARKER} & set(present):
            raise ConfigError(
                f"output {out!r} already holds a run ({', '.join(present)}); "
                "choose an empty folder or pass --overwrite to replace it"
            )
        raise ConfigError(
            f"output {out!r} already holds {', '.join(present)}, which a run would overwrite (and no run of "
            "ours is there, so --overwrite would not delete them either); choose an empty folder or move them away"
        )
    doomed = _owned_paths(out, present) if present else []
    try:
        if not fs_util.is_remote(out):
            os.makedirs(out, exist_ok=True)
        prov.write_atomic(f"{out}/{MARKER}", {
            "sanitizer_run": 1,
            "started_at": datetime.now(timezone.utc).isoformat(),
            "note": "written by 'sanitize run' when it claims this folder; removed when it publishes manifest.json",
        })
        for path in doomed:
            if path != f"{out}/{MARKER}":
                _delete(path)
    except OSError as exc:
        raise write_failure(out, exc) from None


def release_marker(out: str) -> None:
    """Published: from now on the manifest and provenance say what is ours. A leftover marker is harmless."""
    try:
        _fs().delete([f"{out}/{MARKER}"])
    except OSError as exc:
        log.warning("could not remove %s/%s: %s", out, MARKER, exc)
