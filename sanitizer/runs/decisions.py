"""Review decisions: the files reviewers write, reading them back, and binding them to record content.

Everything a run (``sanitize run --decisions``: :mod:`sanitizer.beam.plan`, :mod:`sanitizer.beam.policy`) and the
review commands need about decisions lives here; this module imports nothing else of
:mod:`sanitizer.review` (reading a published run: :mod:`sanitizer.review.output`; publishing:
:mod:`sanitizer.review.publish`).

Each ``release``/``confirm`` command writes one new
file, ``OUT/review/decisions/<UTC time>-<uuid>.jsonl``, written once and never
rewritten (two reviewers at once, locally or on an object store that cannot
append, never lose each other's decisions), one JSON object per line::

    {"id": "digit-00042", "decision": "release", "reason": "a clean 7, thick stroke",
     "reviewer": "ana", "time": "2026-11-29T08:30:00.123Z", "run_id": "20261129T081828Z-50b5a6a4e6",
     "content_sha256": "9f2c..."}

Reading the decisions means: the old single ``OUT/review/decisions.jsonl``
(still read, never written), then every ``review/decisions/*.jsonl`` in name
(= time) order; a later decision on the same id supersedes an earlier one
(last line wins) and the history stays. ``sanitize run --decisions`` takes a
decisions file, a ``review/decisions/`` folder, a ``review/`` folder or a run's
OUT folder.

**A decision is bound to the record's content**, not just its id:
``content_sha256`` is :func:`sanitizer.data.content_hash.content_sha256` of the record's original columns
when the decision was made (runs store the same hash in the quarantine column
``sanitizer_content_sha256``). A decision applies only while the record at its
id still has that content; generated ids are file positions
(``<file>:<row>``), so new data at the same position gets the same id, and a
release made for yesterday's row must not let today's row in. A decision whose
hash does not match is *stale*: never applied (by ``publish`` or by ``run
--decisions``, which counts it as ``decisions.applied.stale``), shown as
``stale`` by ``review list`` and explained by ``review show``. Decision lines
written before decisions carried a hash (no ``content_sha256``) are *unbound*:
treated as stale, never applied, counted as ``stale_unbound``; record them
again with ``sanitize review OUT release|confirm``.

``sanitize run --decisions FILE`` (config key ``decisions``) carries the
decisions into a new run: a released record stays clean even when a detector
flags it again (the flags are counted as overridden), a confirmed record stays
quarantined with reason ``review:confirmed``. A row that fails a row check
(null, NaN, wrong length, a row-level expectation) cannot be released: a
release overrides detectors, not broken data.
"""

from __future__ import annotations

import getpass
import glob
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sanitizer.io import fs
from sanitizer.errors import ConfigError, SanitizerError
from sanitizer.data.layout import REVIEW_DIR

DECISIONS_FILE = f"{REVIEW_DIR}/decisions.jsonl"  # the old single file: read, never written
DECISIONS_DIR = f"{REVIEW_DIR}/decisions"  # one file per release/confirm command
RELEASE, CONFIRM = "release", "confirm"
DECISION_KINDS = (RELEASE, CONFIRM)
REQUIRED_FIELDS = ("id", "decision", "reason", "reviewer", "time")
CONTENT_FIELD = "content_sha256"  # in a decision line: the record's content when it was decided
REVIEW_DETECTOR = "review"
CONFIRMED_CODE = "review:confirmed"
ROW_CHECK_DETECTOR = "validation"  # row checks and row-level expectations: a release cannot override them

class ReviewError(SanitizerError):
    """A review command cannot do what was asked (unknown id, nothing to publish...); nothing was written."""



def binding(decision: dict | None, content: str | None) -> str:
    """How a decision relates to a record's content: "none" (no decision), "bound" (same content),
    "stale" (other content) or "unbound" (a decision line without a content hash)."""
    if decision is None:
        return "none"
    wanted = decision.get(CONTENT_FIELD)
    if not wanted:
        return "unbound"
    return "bound" if content is not None and wanted == content else "stale"


# --------------------------------------------------------------------------- decisions


def _is_decisions_file(path: str) -> bool:
    """A decisions file at ``path`` (on an object store: an existing ``*.jsonl`` object)."""
    if fs.is_remote(path):
        return path.endswith(".jsonl") and fs.exists(path)
    return os.path.isfile(path)


@dataclass(frozen=True)
class Matched:
    """Row masks of one batch against the decisions (see :meth:`ReviewDecisions.lookup`)."""

    released: Any  # (n,) bool: a release bound to this row's content
    confirmed: Any  # (n,) bool: a confirm bound to this row's content
    stale: Any  # (n,) bool: a decision on this id, made for other content (or unbound): not applied
    unbound: Any  # (n,) bool: the subset of ``stale`` whose decision line has no content hash


@dataclass(frozen=True)
class ReviewDecisions:
    """Parsed decisions: the last decision per record id. Travels to workers inside the Plan."""

    path: str
    sha256: str  # of the decision files' bytes, concatenated in reading order
    lines: int  # decision lines in the files (blank lines not counted)
    latest: dict[str, dict] = field(default_factory=dict)  # id -> its last decision
    released: frozenset = frozenset()
    confirmed: frozenset = frozenset()
    files: int = 1  # how many files were read

    @classmethod
    def from_records(cls, path: str, sha256: str, records: list[dict], files: int = 1) -> "ReviewDecisions":
        latest: dict[str, dict] = {}
        for rec in records:
            latest[rec["id"]] = rec  # last wins
        released = frozenset(i for i, r in latest.items() if r["decision"] == RELEASE)
        confirmed = frozenset(i for i, r in latest.items() if r["decision"] == CONFIRM)
        return cls(path, sha256, len(records), latest, released, confirmed, files)

    @property
    def unbound(self) -> int:
        """Latest decisions without a content hash (written by an older sanitizer): never applied."""
        return sum(1 for r in self.latest.values() if not r.get(CONTENT_FIELD))

    def rows_with_decisions(self, ids) -> Any:
        """Positions in an array of id strings (None for a missing id) that have a decision."""
        import numpy as np

        latest = self.latest
        return np.flatnonzero(np.fromiter((i is not None and i in latest for i in ids), dtype=bool, count=len(ids)))

    def lookup(self, ids, content=None) -> Matched:
        """Masks over a batch: ``ids`` (id strings) and ``content`` (each row's content hash,
        None where not computed; needed at least for the rows with a decision). A decision applies only
        to a row whose content hash equals the one stored with it; otherwise the row is ``stale``."""
        import numpy as np

        n = len(ids)
        masks = {k: np.zeros(n, dtype=bool) for k in ("released", "confirmed", "stale", "unbound")}
        for row in self.rows_with_decisions(ids):
            rec = self.latest[ids[row]]
            state = binding(rec, None if content is None else content[row])
            if state == "bound":
                masks["released" if rec["decision"] == RELEASE else "confirmed"][row] = True
            else:
                masks["stale"][row] = True
                masks["unbound"][row] = state == "unbound"
        return Matched(**masks)

    def confirmed_reason(self, record_id: str) -> dict[str, Any]:
        """The reason entry a confirmed record carries in the quarantine (detector "review")."""
        rec = self.latest[record_id]
        evidence = {k: rec.get(k) for k in ("decision", "reason", "reviewer", "time", "run_id", CONTENT_FIELD)}
        evidence["decisions_sha256"] = self.sha256
        return {"detector": REVIEW_DETECTOR, "code": CONFIRMED_CODE, "action": "quarantine", "score": None,
                "threshold": None, "evidence": evidence}

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "files": self.files,
            "lines": self.lines,
            "records": len(self.latest),
            "release": len(self.released),
            "confirm": len(self.confirmed),
            "unbound": self.unbound,
        }

    def warnings(self) -> list[str]:
        """What a run should warn about before it starts (no decisions at all; unbound decision lines)."""
        if self.lines == 0:
            return [f"decisions {self.path!r} hold no decisions"]
        if self.unbound:
            return [f"{self.unbound} decision(s) in {self.path!r} carry no {CONTENT_FIELD} (recorded before "
                    "decisions were bound to record content), so they are not applied; review those records "
                    "again with 'sanitize review OUT release|confirm ID... --reason TEXT'"]
        return []


def _check_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def parse_decisions(data: bytes, path: str) -> list[dict]:
    """Every decision in one file, in order; a broken line raises ConfigError naming the file and line."""

    def fail(lineno: int, what: str) -> None:
        raise ConfigError(
            f"decisions file {path!r} line {lineno}: {what}. Fix that line (nothing else in the file is "
            "changed or lost); each line must be a JSON object with "
            f"{', '.join(REQUIRED_FIELDS)} and decision one of {', '.join(DECISION_KINDS)}"
        )

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        fail(line, "not UTF-8 text")
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            fail(lineno, f"not valid JSON ({exc.msg} at column {exc.colno})")
        if not isinstance(obj, dict):
            fail(lineno, f"expected a JSON object, got {type(obj).__name__}")
        missing = [k for k in REQUIRED_FIELDS if k not in obj or obj[k] is None]
        if missing:
            fail(lineno, f"missing field(s) {', '.join(missing)}")
        rid = obj["id"]
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid) == "":
            fail(lineno, f"id must be a non-empty string or an integer, got {rid!r}")
        if obj["decision"] not in DECISION_KINDS:
            fail(lineno, f"unknown decision {obj['decision']!r} (allowed: {', '.join(DECISION_KINDS)})")
        for key in ("reason", "reviewer", "time"):
            if not isinstance(obj[key], str) or not obj[key].strip():
                fail(lineno, f"{key} must be a non-empty string, got {obj[key]!r}")
        if not _check_time(obj["time"]):
            fail(lineno, f"time must be an ISO 8601 timestamp, got {obj['time']!r}")
        content = obj.get(CONTENT_FIELD)
        if content is not None and not (isinstance(content, str) and re.fullmatch(r"[0-9a-f]{64}", content)):
            fail(lineno, f"{CONTENT_FIELD} must be 64 lowercase hex digits, got {content!r}")
        records.append(dict(obj, id=str(rid), line=lineno, file=path))
    return records


def _review_sources(review: str) -> list[str] | None:
    """A review folder's decision files, oldest first (decisions.jsonl, then decisions/*.jsonl by name);
    None when the folder holds neither."""
    legacy = fs.join(review, "decisions.jsonl")
    folder = fs.join(review, "decisions")
    batches = fs.list_files(glob.escape(folder) + "/*.jsonl" if not fs.is_remote(folder) else folder + "/*.jsonl")
    if _is_decisions_file(legacy):
        return [legacy] + batches
    if batches or fs.is_dir(folder):
        return batches
    return None


def decision_sources(path: str) -> list[str] | None:
    """The files holding the decisions at ``path``, in reading order; None when there is nothing there.

    ``path``: one decisions file (``*.jsonl``); a folder of them (``OUT/review/decisions``); a review
    folder (``OUT/review``); or a run's output folder (``OUT``).
    """
    path = path.rstrip("/") or path
    if _is_decisions_file(path):
        return [path]
    for review in (fs.join(path, REVIEW_DIR), path):
        found = _review_sources(review)
        if found is not None:
            return found
    if fs.is_dir(path):
        return fs.list_files(glob.escape(path) + "/*.jsonl" if not fs.is_remote(path) else path + "/*.jsonl")
    return None


def _read_sources(path: str, sources: list[str]) -> ReviewDecisions:
    records: list[dict] = []
    digest = hashlib.sha256()
    for source in sources:
        data = fs.read_bytes(source)
        digest.update(data if not data or data.endswith(b"\n") else data + b"\n")
        records += parse_decisions(data, source)
    return ReviewDecisions.from_records(path, digest.hexdigest(), records, files=len(sources))


def load_decisions(path: str) -> ReviewDecisions:
    """Read and check the decisions at ``path`` (see :func:`decision_sources`); raises ConfigError naming a
    broken line, or when ``path`` holds no decisions file or folder; never writes anything."""
    sources = decision_sources(path)
    if sources is None:
        raise ConfigError(
            f"decisions file or folder {path!r} does not exist; pass a decisions file, a review/decisions/ "
            "folder, or the output folder of a run whose records were reviewed"
        )
    return _read_sources(path, sources)


def decisions_dir(out: str) -> str:
    return fs.join(out, DECISIONS_DIR)


def decisions_path(out: str) -> str:
    """The old single decisions file of ``out`` (read for compatibility; new decisions go to decisions_dir)."""
    return fs.join(out, DECISIONS_FILE)


def load_output_decisions(out: str) -> ReviewDecisions | None:
    """Every decision recorded for the run in ``out``; None when none was ever recorded."""
    sources = _review_sources(fs.join(out, REVIEW_DIR))
    return _read_sources(out, sources) if sources else None


def default_reviewer() -> str:
    name = os.environ.get("USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no login name at all (some containers)
        return "unknown"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_batch(out: str, lines: list[str]) -> str:
    """Write one command's decisions as a new file under OUT/review/decisions/; returns its path.

    The name (UTC time to the microsecond + a random uuid) is new every time, so a file is written
    once and never rewritten or appended to: concurrent reviewers cannot overwrite each other. Local
    files appear whole (written under a hidden temporary name, then renamed); an object store makes
    an object visible only once it is complete.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{stamp}-{uuid.uuid4().hex}.jsonl"
    payload = "".join(line + "\n" for line in lines).encode("utf-8")
    path = fs.join(decisions_dir(out), name)
    if fs.is_remote(path):
        with fs.create(path) as fh:
            fh.write(payload)
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".{name}.tmp")
    with open(tmp, "xb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path



# --------------------------------------------------------------------------- run-time summary


def provenance_entry(decisions: ReviewDecisions | None, counts) -> dict[str, Any] | None:
    """What a run with --decisions records in provenance: the files (sha256) and what they changed
    (``applied.stale``: rows whose decision was made for other content, or carries no content hash)."""
    if decisions is None:
        return None
    return dict(decisions.describe(), applied=counts.review.to_dict() if counts.review is not None else {})
