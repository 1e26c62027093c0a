"""The output lock: one ``sanitize run`` or ``sanitize publish`` per output folder at a time.

Both commands hold ``OUT/.sanitizer.lock`` (:data:`sanitizer.data.layout.LOCK`) while
they change ``OUT``: a run from before it deletes or writes anything there until
its manifest is written (or it fails), a publish for its whole duration. The lock
is created exclusively and whole: written to a private temporary file, then
hard-linked to the lock name, which fails when the lock exists (``O_EXCL`` where
hard links are missing). It names the command, pid, host and start time; a second
command exits 2 naming the holder.

A lock whose process is gone (same host, pid not running, or running but started
after the lock was taken: the pid was reused) is stale and is taken over, with a
warning naming the holder; any other lock is only broken on request
(``sanitize publish OUT --break-lock``) or by removing the file. On an object
store (``gs://``, ``s3://``) there is no exclusive create through Beam's
filesystems: the lock is written, then read back, and only the command that
reads its own token goes on - two commands starting within the same instant can
still both pass, so schedule one run per output there (one Airflow task).

The lock is taken where the pipeline is launched (``sanitize run``, the
``Sanitize`` transform when it is applied), never by Beam workers; this process
remembers the locks it holds (:func:`held`), so a ``Sanitize`` applied under a
launcher's lock uses that lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable, Iterator

from sanitizer.io import fs
from sanitizer.errors import SanitizerError
from sanitizer.data.layout import LOCK

log = logging.getLogger("sanitizer")

_HELD: dict[str, dict] = {}  # lock path -> this process's holder record, for the locks this process holds


def lock_path(out: str) -> str:
    return fs.join(out.rstrip("/"), LOCK)


def _proc_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
        return int(text.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def read_holder(path: str) -> dict | None:
    """The lock's holder (command, pid, host, since, token); None when it is gone, empty or unreadable."""
    try:
        value = json.loads(fs.read_bytes(path))
    except (OSError, ValueError):
        return None
    except Exception:  # a Beam filesystem error: the object vanished
        return None
    return value if isinstance(value, dict) else None


def process_gone(holder: dict | None) -> bool:
    """True when the holder ran on this host and its process no longer exists (the lock is stale)."""
    if not holder or holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    started = holder.get("pid_start")
    now = _proc_start(pid)
    return isinstance(started, int) and now is not None and now != started  # the pid was reused


def describe(holder: dict | None) -> str:
    if not holder:
        return "(its holder is unknown: the lock file is empty or unreadable)"
    return f"since {holder.get('since')} (pid {holder.get('pid')} on host {holder.get('host')})"


def held_error(out: str, path: str, holder: dict | None, hint: str = "") -> SanitizerError:
    what = (holder or {}).get("command") or "run or publish"
    return SanitizerError(
        f"another {what} holds the lock {LOCK} in {out} {describe(holder)}; nothing was changed. Wait for it to "
        f"finish; if it is dead, {hint or ''}remove {path}"
    )


def _create_exclusive(path: str, data: bytes) -> None:
    """Create ``path`` holding ``data``, or raise FileExistsError; the file never exists half written.

    The data goes to a private temporary file first, which is then hard-linked to ``path`` (link fails
    when ``path`` exists: an exclusive create, also on NFS). Where hard links are not supported, falls
    back to ``O_CREAT | O_EXCL`` (then a kill between create and write leaves an empty lock, which is
    reported as held by an unknown holder).
    """
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this filesystem
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        os.remove(tmp)


def _break_local(path: str, holder: dict | None, error: Callable[[dict | None], Exception]) -> None:
    """Move the judged-stale lock aside; if what moved is not the lock that was judged (another command took
    it meanwhile), put it back and give up."""
    aside = f"{path}.broken-{uuid.uuid4().hex}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = read_holder(aside)
    if moved != holder:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        os.remove(aside)
        raise error(moved)
    os.remove(aside)
    h = holder or {}
    log.warning("took over the lock %s left by %s %s (pid %s on %s, no longer running)", path,
                h.get("command") or "a command", h.get("since"), h.get("pid"), h.get("host"))


def _take_local(path: str, info: dict, break_lock: bool, error: Callable[[dict | None], Exception]) -> None:
    for _ in range(5):
        try:
            _create_exclusive(path, json.dumps(info).encode("utf-8"))
            return
        except FileExistsError:
            holder = read_holder(path)
            if holder is None and not os.path.lexists(path):
                continue  # released meanwhile: try again
            if not (break_lock or process_gone(holder)):
                raise error(holder) from None
            _break_local(path, holder, error)
    raise error(read_holder(path))


def _take_remote(path: str, info: dict, break_lock: bool, error: Callable[[dict | None], Exception]) -> None:
    """Best effort on object stores (no exclusive create through Beam): write, read back, check the token."""
    if fs.exists(path):
        holder = read_holder(path)
        if not (break_lock or process_gone(holder)):
            raise error(holder)
        fs.delete(path)
    with fs.create(path) as fh:
        fh.write(json.dumps(info).encode("utf-8"))
    holder = read_holder(path)
    if (holder or {}).get("token") != info["token"]:
        raise error(holder)


def _created_folders(out: str) -> list[str]:
    """The folders ``makedirs(out)`` would create, deepest first (nothing on an object store)."""
    if fs.is_remote(out):
        return []
    missing, here = [], os.path.abspath(out)
    while not os.path.lexists(here):
        missing.append(here)
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    return missing


def acquire(out: str, command: str, break_lock: bool = False,
            error: Callable[[dict | None], Exception] | None = None) -> dict:
    """Take ``OUT/.sanitizer.lock`` for ``command`` ("run" or "publish"); the holder record (with its token).

    Raises ``error(holder)`` (default: SanitizerError naming the holder) when a live command holds it. A lock
    left by a process that is gone (same host) is taken over with a warning; ``break_lock`` takes over any.
    The output folder is created when missing, and removed again by :func:`release` if it is still empty.
    """
    out = out.rstrip("/")
    path = lock_path(out)
    error = error or (lambda holder: held_error(out, path, holder))
    created = _created_folders(out)
    info = {"command": command, "pid": os.getpid(), "pid_start": _proc_start(os.getpid()),
            "host": socket.gethostname(), "since": datetime.now(timezone.utc).isoformat(),
            "token": uuid.uuid4().hex}
    if fs.is_remote(path):
        _take_remote(path, info, break_lock, error)
    else:
        os.makedirs(out, exist_ok=True)
        try:
            _take_local(path, info, break_lock, error)
        except BaseException:
            _remove_empty(created)
            raise
    info["_created"] = created
    _HELD[path] = info
    return info


def _remove_empty(folders: list[str]) -> None:
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def release(out: str, info: dict) -> None:
    """Remove the lock if it is still ``info``'s (same token); an output folder the lock created and nothing
    else filled is removed too. Never raises for a lock that is already gone."""
    path = lock_path(out)
    if _HELD.get(path, {}).get("token") == info.get("token"):
        _HELD.pop(path, None)
    try:
        if (read_holder(path) or {}).get("token") == info.get("token"):
            fs.delete(path)
    except OSError as exc:
        log.warning("could not remove the lock %s: %s", path, exc)
    _remove_empty(info.get("_created") or [])


def release_token(out: str, token: str | None) -> None:
    """Remove ``OUT/.sanitizer.lock`` if it still holds ``token`` (a pipeline stage handing the lock back)."""
    if token:
        release(out, {"token": token})


def held(out: str) -> dict | None:
    """The holder record of the lock this process holds on ``out``, if it still holds it (its token is in
    the lock file); None otherwise."""
    path = lock_path(out)
    info = _HELD.get(path)
    if info is None:
        return None
    if (read_holder(path) or {}).get("token") != info["token"]:
        _HELD.pop(path, None)
        return None
    return info


@contextmanager
def output_lock(out: str, command: str, break_lock: bool = False,
                error: Callable[[dict | None], Exception] | None = None) -> Iterator[dict]:
    """Hold ``OUT/.sanitizer.lock`` for the duration (see :func:`acquire`)."""
    info = acquire(out, command, break_lock, error)
    try:
        yield info
    finally:
        release(out, info)
