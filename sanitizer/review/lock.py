"""The lock a ``sanitize publish`` holds: the output lock (:mod:`sanitizer.runs.output_lock`), ``OUT/.sanitizer.lock``.

It is the same lock ``sanitize run`` holds from claiming the folder until its
manifest is written, so a publish and a run on one output never overlap, and two
publishes never do either. A second command exits 2 naming the holder (command,
pid, host, start time). A lock whose process is gone (same host, pid not running)
is taken over with a warning; ``sanitize publish OUT --break-lock`` takes over any
lock, a live run's included. On an object store the lock is best effort (see
:mod:`sanitizer.runs.output_lock`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sanitizer.runs import output_lock
from sanitizer.data.layout import LOCK
from sanitizer.runs.decisions import ReviewError

LOCK_FILE = LOCK  # relative to OUT


def _held(out: str, holder: dict | None) -> ReviewError:
    hint = f"run again with 'sanitize publish {out} --break-lock', or "
    return ReviewError(str(output_lock.held_error(out, output_lock.lock_path(out), holder, hint)))


@contextmanager
def publish_lock(out: str, break_lock: bool = False) -> Iterator[dict]:
    """Hold ``OUT/.sanitizer.lock`` for the duration of a publish; ReviewError naming the holder when a live
    run or publish holds it. ``break_lock`` takes over any lock."""
    out = out.rstrip("/")
    with output_lock.output_lock(out, "publish", break_lock, error=lambda holder: _held(out, holder)) as info:
        yield info
