"""Progress on long runs: a live status line on a terminal, nothing extra in logs.

``sanitize run`` turns this on when its stderr is a terminal (and off with
``--quiet``). It sets ``SANITIZER_PROGRESS=1`` in the environment, so the
pipeline's DoFns - in this process for the DirectRunner, in worker processes
that inherit the environment for the multi-processing runner - add to the
counters and redraw one status line at most a few times a second::

    [scoring] read 412,000 rows · scored 380,000 rows · quarantined 1,204

When stderr is not a terminal (CI, Airflow, log collectors) nothing is drawn:
stages are logged at INFO through the ``sanitizer`` logger instead, so logs stay
line-oriented. Remote runners report through their own monitoring.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

ENV = "SANITIZER_PROGRESS"
log = logging.getLogger("sanitizer")

_lock = threading.Lock()
_counts: dict[str, int] = {}
_stage = ""
_last_draw = 0.0
_drawn = False


def enabled() -> bool:
    return os.environ.get(ENV) == "1" and sys.stderr.isatty()


def stage(name: str) -> None:
    """Enter a stage (planning, sampling, fitting, scoring, finalising)."""
    global _stage
    with _lock:
        _stage = name
    log.info("stage: %s", name)
    _draw(force=True)


def add(counter: str, n: int) -> None:
    """Add n to a counter (rows read, scored, quarantined) and redraw if due."""
    if os.environ.get(ENV) != "1":
        return
    with _lock:
        _counts[counter] = _counts.get(counter, 0) + int(n)
    _draw()


def _draw(force: bool = False) -> None:
    global _last_draw, _drawn
    if not enabled():
        return
    now = time.monotonic()
    with _lock:
        if not force and now - _last_draw < 0.2:
            return
        _last_draw = now
        parts = [f"{name} {value:,} rows" if name in ("read", "scored") else f"{name} {value:,}"
                 for name, value in _counts.items()]
        line = f"[{_stage}] " + " · ".join(parts) if parts else f"[{_stage}]"
        _drawn = True
    sys.stderr.write("\r\033[K" + line)
    sys.stderr.flush()


def finish() -> None:
    """End the status line so the summary starts on a clean line; reset counters."""
    global _drawn
    with _lock:
        drawn, _drawn = _drawn, False
        _counts.clear()
    if drawn and enabled():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
