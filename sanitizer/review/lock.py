"""The publish lock: one ``sanitize publish`` per output folder at a time.

A publish holds ``OUT/review/publish.lock`` (created exclusively and whole: written to a
private temporary file, then hard-linked to the lock name, which fails when the
lock exists - ``O_EXCL`` where hard links are missing; it names the pid, host
and start time); a second one exits 2 naming the holder. A lock whose
process is gone (same host, pid not running) is stale and is taken over; any
other lock is only broken by ``sanitize publish OUT --break-lock``. On an
object store (``gs://``, ``s3://``) there is no exclusive create through Beam's
filesystems: the lock is written, then read back, and only the publish that
reads its own token goes on - two publishes starting within the same instant
can still both pass, so schedule one publish per output there (one Airflow
task).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from contextlib import contextmanager
from typing import Iterator

from sanitizer import fs
from sanitizer.review.decisions import REVIEW_DIR, ReviewError, utc_now

log = logging.getLogger("sanitizer.review")  # the name these warnings have always carried

LOCK_FILE = f"{REVIEW_DIR}/publish.lock"


def _read_lock(path: str) -> dict | None:
    """The lock's holder (pid, host, since, token); None when it is gone, empty or unreadable."""
    try:
        value = json.loads(fs.read_bytes(path))
    except (OSError, ValueError):
        return None
    except Exception:  # a Beam filesystem error: the object vanished
        return None
    return value if isinstance(value, dict) else None


def _process_gone(holder: dict | None) -> bool:
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
    return False


def _held(out: str, path: str, holder: dict | None) -> ReviewError:
    who = (f"since {holder.get('since')} (pid {holder.get('pid')} on host {holder.get('host')})" if holder
           else "(its holder is unknown: the lock file is empty or unreadable)")
    return ReviewError(
        f"another publish holds the lock {LOCK_FILE} in {out} {who}; nothing was published. Wait for it to "
        f"finish; if it is dead, run again with 'sanitize publish {out} --break-lock', or remove {path}"
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
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        os.remove(tmp)


def _take_local(out: str, path: str, info: dict, break_lock: bool) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(5):
        try:
            _create_exclusive(path, json.dumps(info).encode("utf-8"))
            return
        except FileExistsError:
            holder = _read_lock(path)
            if holder is None and not os.path.exists(path):
                continue  # released meanwhile: try again
            if not (break_lock or _process_gone(holder)):
                raise _held(out, path, holder) from None
            _break_local(out, path, holder)
    raise _held(out, path, _read_lock(path))


def _break_local(out: str, path: str, holder: dict | None) -> None:
    """Move the judged-stale lock aside; if what moved is not the lock that was judged (another publish took
    it meanwhile), put it back and give up."""
    aside = f"{path}.broken-{uuid.uuid4().hex}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = _read_lock(aside)
    if moved != holder:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        os.remove(aside)
        raise _held(out, path, moved)
    os.remove(aside)
    log.warning("took over the publish lock %s left by %s (pid %s on %s)", path, (holder or {}).get("since"),
                (holder or {}).get("pid"), (holder or {}).get("host"))


def _take_remote(out: str, path: str, info: dict, break_lock: bool) -> None:
    """Best effort on object stores (no exclusive create through Beam): write, read back, check the token."""
    if fs.exists(path):
        holder = _read_lock(path)
        if not (break_lock or _process_gone(holder)):
            raise _held(out, path, holder)
        fs.delete(path)
    with fs.create(path) as fh:
        fh.write(json.dumps(info).encode("utf-8"))
    holder = _read_lock(path)
    if (holder or {}).get("token") != info["token"]:
        raise _held(out, path, holder)


@contextmanager
def publish_lock(out: str, break_lock: bool = False) -> Iterator[dict]:
    """Hold ``OUT/review/publish.lock`` for the duration: one publish per output at a time.

    Raises ReviewError naming the holder when a live publish holds it. A lock left by a process that is
    gone (same host, pid not running) is taken over; ``break_lock`` takes over any lock.
    """
    out = out.rstrip("/")
    path = fs.join(out, LOCK_FILE)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now(), "token": uuid.uuid4().hex,
            "command": "sanitize publish"}
    (_take_remote if fs.is_remote(path) else _take_local)(out, path, info, break_lock)
    try:
        yield info
    finally:
        if (_read_lock(path) or {}).get("token") == info["token"]:
            fs.delete(path)
