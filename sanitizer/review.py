"""Human review of quarantined records: decisions, and publishing them.

A reviewer looks at what a run quarantined (``sanitize review OUT list|show``)
and decides, record by record, to **release** it (a false alarm: it belongs in
the clean set) or to **confirm** it (it stays quarantined, whatever the
detectors say next time). Each ``release``/``confirm`` command writes one new
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
``content_sha256`` is :func:`content_sha256` of the record's original columns
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

``sanitize publish OUT`` turns the decisions into a new manifest: the released
rows (original columns only, the clean shards' schema) become one extra clean
shard, ``clean/part-released-<publication id>.parquet``; the run's quarantine
shards stay as they are (the audit record, released rows included) and the new
manifest's quarantine row count excludes the released rows, so
``input rows = clean rows + quarantined rows`` holds again, and is checked
before anything is published. The manifest it replaces is kept as
``manifest-<its run id>.json`` and ``review/publication-<id>.json`` records the
decisions applied. Every publication starts from the run's own shards and the
latest decision per id, so publishing again after more decisions is safe.

Publishing is idempotent and recoverable. The publication id is a digest of
(run, decisions, manifest it replaces), so a publish that is killed and run
again writes the same publication. One publish at a time holds
``OUT/review/publish.lock`` (created exclusively and whole: written to a
private temporary file, then hard-linked to the lock name, which fails when the
lock exists - ``O_EXCL`` where hard links are missing; it names the pid, host
and start time); a second one exits 2 naming the holder. A lock whose
process is gone (same host, pid not running) is stale and is taken over; any
other lock is only broken by ``sanitize publish OUT --break-lock``. On an
object store (``gs://``, ``s3://``) there is no exclusive create through Beam's
filesystems: the lock is written, then read back, and only the publish that
reads its own token goes on - two publishes starting within the same instant
can still both pass, so schedule one publish per output there (one Airflow
task). The released shard is written under a ``.tmp`` name and renamed just
before the manifest; a released shard that no manifest names (left by a kill
between the two) and any ``.tmp`` leftover are removed by the next publish.
Publishing the same decisions again changes nothing.

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
import logging
import os
import re
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from sanitizer.errors import ConfigError, IntegrityError, SanitizerError

log = logging.getLogger(__name__)

REVIEW_DIR = "review"
DECISIONS_FILE = f"{REVIEW_DIR}/decisions.jsonl"  # the old single file: read, never written
DECISIONS_DIR = f"{REVIEW_DIR}/decisions"  # one file per release/confirm command
LOCK_FILE = f"{REVIEW_DIR}/publish.lock"
RELEASE, CONFIRM = "release", "confirm"
DECISION_KINDS = (RELEASE, CONFIRM)
REQUIRED_FIELDS = ("id", "decision", "reason", "reviewer", "time")
CONTENT_FIELD = "content_sha256"  # in a decision line: the record's content when it was decided
REVIEW_DETECTOR = "review"
CONFIRMED_CODE = "review:confirmed"
ROW_CHECK_DETECTOR = "validation"  # row checks and row-level expectations: a release cannot override them
RELEASED_SHARD = "clean/part-released-{id}.parquet"
PUBLICATION_RECORD = f"{REVIEW_DIR}/publication-{{id}}.json"
SUPERSEDED_MANIFEST = "manifest-{id}.json"

REASONS_COLUMN = "sanitizer_reasons"  # the same names as sanitizer.beam.transforms (not imported: no Beam here)
CODES_COLUMN = "sanitizer_reason_codes"
SCORE_PREFIX = "sanitizer_score_"
CONTENT_COLUMN = "sanitizer_content_sha256"  # quarantine shards: content_sha256 of the row
_CONTENT_VERSION = b"sanitizer-content-v1\n"


class ReviewError(SanitizerError):
    """A review command cannot do what was asked (unknown id, nothing to publish...); nothing was written."""


# --------------------------------------------------------------------------- record content


def content_columns(names: Iterable[str]) -> list[str]:
    """A record's original columns: every column but the ones the sanitizer adds (``sanitizer_*``, internal)."""
    return [n for n in names if not n.startswith(("sanitizer_", "__sanitizer_"))]


def _canonical(value: Any) -> Any:
    """JSON for the values json cannot write itself (bytes, dates, decimals), tagged so types stay apart."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(value).hex()}
    if hasattr(value, "isoformat"):
        return {"$time": value.isoformat()}
    return {"$" + type(value).__name__: str(value)}


def content_sha256(table, rows=None) -> list[str]:
    """sha256 (hex) of each row's original columns (:func:`content_columns`), in a canonical encoding.

    The one definition of "the same record": the pipeline writes it into the quarantine column
    ``sanitizer_content_sha256``, a decision stores it, and a later run or ``publish`` compares the two.
    The encoding is a versioned prefix + the row as compact JSON with sorted column names (floats as
    Python's shortest round-trip repr, NaN as ``NaN``), so it does not depend on column order, batch
    boundaries or the runner. ``rows``: positions to hash (default all); per-row Python, so the pipeline
    hashes only the rows that need it (quarantined rows and rows with a decision).
    """
    import pyarrow as pa

    table = table.select(content_columns(table.column_names))
    if rows is not None:
        table = table.take(pa.array(rows, type=pa.int64()))
    out = []
    for record in table.to_pylist():
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical)
        out.append(hashlib.sha256(_CONTENT_VERSION + text.encode("utf-8")).hexdigest())
    return out


def binding(decision: dict | None, content: str | None) -> str:
    """How a decision relates to a record's content: "none" (no decision), "bound" (same content),
    "stale" (other content) or "unbound" (a decision line without a content hash)."""
    if decision is None:
        return "none"
    wanted = decision.get(CONTENT_FIELD)
    if not wanted:
        return "unbound"
    return "bound" if content is not None and wanted == content else "stale"


# --------------------------------------------------------------------------- files (local or any Beam filesystem)


def _remote(path: str) -> bool:
    return "://" in path


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def exists(path: str) -> bool:
    return _fs().exists(path) if _remote(path) else os.path.exists(path)


def read_bytes(path: str) -> bytes:
    if _remote(path):
        with _fs().open(path) as fh:
            return fh.read()
    with open(path, "rb") as fh:
        return fh.read()


def _write_bytes_atomic(path: str, data: bytes) -> None:
    if _remote(path):
        fs = _fs()
        with fs.create(path + ".tmp") as fh:
            fh.write(data)
        if fs.exists(path):
            fs.delete([path])
        fs.rename([path + ".tmp"], [path])
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(path + ".tmp", path)


def _delete(path: str) -> None:
    if _remote(path):
        if _fs().exists(path):
            _fs().delete([path])
    elif os.path.exists(path):
        os.remove(path)


def _rename(src: str, dst: str) -> None:
    if _remote(src):
        _fs().rename([src], [dst])
    else:
        os.replace(src, dst)


def _list(pattern: str) -> list[str]:
    """Files matching a glob ``pattern`` (local, or any Beam filesystem), sorted by name."""
    if not _remote(pattern):
        return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    try:
        found = _fs().match([pattern])[0].metadata_list
    except Exception:  # some filesystems raise when a pattern matches nothing
        return []
    return sorted(m.path for m in found)


def _is_file(path: str) -> bool:
    if _remote(path):
        return path.endswith(".jsonl") and _fs().exists(path)
    return os.path.isfile(path)


def _is_dir(path: str) -> bool:
    if _remote(path):  # object stores have no folders: a prefix with objects under it
        return bool(_list(path.rstrip("/") + "/*"))
    return os.path.isdir(path)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_parquet(path: str, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    if _remote(path):
        with _fs().open(path) as fh:
            return pq.read_table(fh, columns=columns)
    return pq.read_table(path, columns=columns)


def _parquet_names(path: str) -> list[str]:
    import pyarrow.parquet as pq

    if _remote(path):
        with _fs().open(path) as fh:
            return pq.read_schema(fh).names
    return pq.read_schema(path).names


def _parquet_rows(path: str) -> int:
    import pyarrow.parquet as pq

    if _remote(path):
        with _fs().open(path) as fh:
            return pq.read_metadata(fh).num_rows
    return pq.read_metadata(path).num_rows


def _join(out: str, rel: str) -> str:
    return out.rstrip("/") + "/" + rel


# --------------------------------------------------------------------------- decisions


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
        """Masks over a batch: ``ids`` (id strings) and ``content`` (each row's :func:`content_sha256`,
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
    legacy = _join(review, "decisions.jsonl")
    folder = _join(review, "decisions")
    batches = _list(glob.escape(folder) + "/*.jsonl" if not _remote(folder) else folder + "/*.jsonl")
    if _is_file(legacy):
        return [legacy] + batches
    if batches or _is_dir(folder):
        return batches
    return None


def decision_sources(path: str) -> list[str] | None:
    """The files holding the decisions at ``path``, in reading order; None when there is nothing there.

    ``path``: one decisions file (``*.jsonl``); a folder of them (``OUT/review/decisions``); a review
    folder (``OUT/review``); or a run's output folder (``OUT``).
    """
    path = path.rstrip("/") or path
    if _is_file(path):
        return [path]
    for review in (_join(path, REVIEW_DIR), path):
        found = _review_sources(review)
        if found is not None:
            return found
    if _is_dir(path):
        return _list(glob.escape(path) + "/*.jsonl" if not _remote(path) else path + "/*.jsonl")
    return None


def _read_sources(path: str, sources: list[str]) -> ReviewDecisions:
    records: list[dict] = []
    digest = hashlib.sha256()
    for source in sources:
        data = read_bytes(source)
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
    return _join(out, DECISIONS_DIR)


def decisions_path(out: str) -> str:
    """The old single decisions file of ``out`` (read for compatibility; new decisions go to decisions_dir)."""
    return _join(out, DECISIONS_FILE)


def load_output_decisions(out: str) -> ReviewDecisions | None:
    """Every decision recorded for the run in ``out``; None when none was ever recorded."""
    sources = _review_sources(_join(out, REVIEW_DIR))
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


def _write_batch(out: str, lines: list[str]) -> str:
    """Write one command's decisions as a new file under OUT/review/decisions/; returns its path.

    The name (UTC time to the microsecond + a random uuid) is new every time, so a file is written
    once and never rewritten or appended to: concurrent reviewers cannot overwrite each other. Local
    files appear whole (written under a hidden temporary name, then renamed); an object store makes
    an object visible only once it is complete.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{stamp}-{uuid.uuid4().hex}.jsonl"
    payload = "".join(line + "\n" for line in lines).encode("utf-8")
    path = _join(decisions_dir(out), name)
    if _remote(path):
        with _fs().create(path) as fh:
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


# --------------------------------------------------------------------------- the published run


@dataclass
class Output:
    """A published run folder as its manifest describes it."""

    out: str
    manifest: dict
    manifest_bytes: bytes
    source_run_id: str  # the pipeline run whose quarantine shards these are
    id_column: str
    label_column: str
    base_clean: list[dict]  # the run's own clean shards (manifest entries, relative paths)
    quarantine: list[dict]  # the run's quarantine shards (unchanged by publications)
    released_shards: list[str]  # clean shards added by the current publication

    @property
    def publication(self) -> dict | None:
        return self.manifest.get("publication")

    def path(self, rel: str) -> str:
        return _join(self.out, rel)


def open_output(out: str) -> Output:
    out = out.rstrip("/")
    from sanitizer.provenance import MANIFEST

    path = _join(out, MANIFEST)
    if not exists(path):
        raise ReviewError(
            f"{out!r} holds no published run ({MANIFEST} is missing); pass the --output folder of a "
            "finished 'sanitize run'"
        )
    data = read_bytes(path)
    try:
        manifest = json.loads(data)
        publication = manifest.get("publication") or {}
        released = list(publication.get("released_shards", []))
        return Output(
            out=out,
            manifest=manifest,
            manifest_bytes=data,
            source_run_id=publication.get("source_run_id", manifest["run_id"]),
            id_column=manifest["id_column"],
            label_column=manifest["label_column"],
            base_clean=[s for s in manifest["clean"]["shards"] if s["path"] not in released],
            quarantine=list(manifest["quarantine"]["shards"]),
            released_shards=released,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReviewError(f"{path} is not a sanitizer manifest ({type(exc).__name__}: {exc})") from None


def applied_decisions(output: Output) -> set[str]:
    """sha256 of the decisions files the published data already reflects (a publication, or run --decisions)."""
    from sanitizer.provenance import PROVENANCE

    applied = set()
    if output.publication:
        applied.add(output.publication.get("decisions", {}).get("sha256"))
    path = output.path((output.manifest.get("provenance") or {}).get("path", PROVENANCE))
    if exists(path):
        try:
            applied.add(((json.loads(read_bytes(path)).get("decisions")) or {}).get("sha256"))
        except ValueError:
            pass
    applied.discard(None)
    return applied


def read_quarantine(output: Output, columns: list[str] | None = None):
    """The run's quarantine shards as one Arrow table (all columns, or ``columns`` where present)."""
    import pyarrow as pa

    tables = []
    for shard in output.quarantine:
        path = output.path(shard["path"])
        if columns is not None:
            names = _parquet_names(path)
            tables.append(_read_parquet(path, [c for c in columns if c in names]))
        else:
            tables.append(_read_parquet(path))
    if not tables:
        names = columns or [output.id_column, output.label_column]
        return pa.table({c: pa.array([], type=pa.string()) for c in names})
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]


def id_strings(column) -> list:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return pc.cast(column, pa.string()).to_pylist()



def _reasons(text: str | None) -> list[dict]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def quarantine_content(output: Output, table) -> list[str]:
    """Each quarantined row's content hash: the shard column, or (runs from before it existed) computed
    from the original columns of the shards. ``table``: read_quarantine(output, [...]) in shard order."""
    if CONTENT_COLUMN in table.column_names and table.column(CONTENT_COLUMN).null_count == 0:
        return table.column(CONTENT_COLUMN).to_pylist()
    return content_sha256(read_quarantine(output))


STATUSES = ("pending", "released", "confirmed", "stale")


@dataclass
class QuarantinedRecord:
    id: str
    label: str | None
    codes: list[str]
    reasons: list[dict]
    scores: dict[str, float | None]  # detector -> score column value (None where not scored)
    decision: dict | None  # the latest decision on it, if any
    content_sha256: str | None = None  # content_sha256 of the record as it is in this run's quarantine

    @property
    def binding(self) -> str:
        """"none", "bound", "stale" or "unbound" (see :func:`binding`)."""
        return binding(self.decision, self.content_sha256)

    @property
    def status(self) -> str:
        """The latest decision in OUT's decisions, when it was made for this content; "stale" when the
        latest decision was made for other content (or carries no content hash); else "confirmed" when
        a run held it for an earlier confirmation (reason review:confirmed); else "pending"."""
        state = self.binding
        if state == "none":
            return "confirmed" if CONFIRMED_CODE in self.codes else "pending"
        if state != "bound":
            return "stale"
        return "released" if self.decision["decision"] == RELEASE else "confirmed"


def quarantined_records(output: Output, decisions: ReviewDecisions | None) -> list[QuarantinedRecord]:
    """Every quarantined record (without its feature columns), with its latest decision and content hash."""
    from sanitizer.records import label_strings

    score_columns: list[str] = []
    if output.quarantine:
        names = _parquet_names(output.path(output.quarantine[0]["path"]))
        score_columns = [n for n in names if n.startswith(SCORE_PREFIX)]
    table = read_quarantine(output, [output.id_column, output.label_column, REASONS_COLUMN, CODES_COLUMN,
                                     CONTENT_COLUMN] + score_columns)
    if table.num_rows == 0:
        return []
    ids = id_strings(table.column(output.id_column))
    labels = label_strings(table.column(output.label_column))
    reasons = table.column(REASONS_COLUMN).to_pylist() if REASONS_COLUMN in table.column_names else [None] * len(ids)
    codes = table.column(CODES_COLUMN).to_pylist() if CODES_COLUMN in table.column_names else [None] * len(ids)
    content = quarantine_content(output, table)
    scores = {c[len(SCORE_PREFIX):]: table.column(c).to_pylist() for c in score_columns if c in table.column_names}
    latest = decisions.latest if decisions is not None else {}
    records = []
    for i, rid in enumerate(ids):
        entries = _reasons(reasons[i])
        records.append(
            QuarantinedRecord(
                id=rid,
                label=labels[i],
                codes=list(codes[i] or [r.get("code") for r in entries]),
                reasons=entries,
                scores={name: _finite(values[i]) for name, values in scores.items()},
                decision=latest.get(rid),
                content_sha256=content[i],
            )
        )
    records.sort(key=lambda r: natural_key(r.id))
    return records


def _finite(value) -> float | None:
    import math

    return None if value is None or not math.isfinite(value) else float(value)


def natural_key(text: str) -> tuple:
    """'f:2' before 'f:10'."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text or ""))


def code_matches(code: str, wanted: str) -> bool:
    """A reason code matches itself and its prefixes: 'invalid' matches 'invalid:nan:age'."""
    return code == wanted or code.startswith(wanted + ":")


def filter_records(records: Iterable[QuarantinedRecord], reason: str | None = None, label: str | None = None,
                   min_score: float | None = None, detector: str | None = None,
                   status: str | None = None) -> list[QuarantinedRecord]:
    """Filters combine (AND). ``detector``: a reason from that detector. ``min_score``: a reason (from
    ``detector`` when given) with a score at least that high."""
    kept = []
    for r in records:
        if reason is not None and not any(code_matches(c, reason) for c in r.codes):
            continue
        if label is not None and r.label != label:
            continue
        if status is not None and r.status != status:
            continue
        entries = [e for e in r.reasons if detector is None or e.get("detector") == detector]
        if detector is not None and not entries:
            continue
        if min_score is not None and not any(
            isinstance(e.get("score"), (int, float)) and e["score"] >= min_score for e in entries
        ):
            continue
        kept.append(r)
    return kept


def find_record(output: Output, record_id: str):
    """(Python dict of the record's quarantine row, with its content hash, shard path) or raise ReviewError."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for shard in output.quarantine:
        table = _read_parquet(output.path(shard["path"]))
        ids = pc.cast(table.column(output.id_column), pa.string())
        mask = pc.fill_null(pc.equal(ids, record_id), False)
        if pc.any(mask).as_py():
            found = table.filter(mask).slice(0, 1)
            row = found.to_pylist()[0]
            if not row.get(CONTENT_COLUMN):  # a run from before the column existed
                row[CONTENT_COLUMN] = content_sha256(found)[0]
            return row, shard["path"]
    raise ReviewError(
        f"record id {record_id!r} is not in the quarantine of run {output.source_run_id} "
        f"({output.out}/quarantine/); 'sanitize review {output.out} list' shows the quarantined ids"
    )


# --------------------------------------------------------------------------- release / confirm


def record_decisions(out: str, ids: list[str], decision: str, reason: str, reviewer: str | None = None) -> list[dict]:
    """Write one decision per id, bound to the record's content, as one new file under
    OUT/review/decisions/; all or nothing. Returns the records written."""
    if decision not in DECISION_KINDS:
        raise ReviewError(f"decision must be one of {', '.join(DECISION_KINDS)}, got {decision!r}")
    if not reason or not reason.strip():
        raise ReviewError("--reason must say why (a non-empty text); nothing was recorded")
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise ReviewError("name at least one record id; nothing was recorded")
    output = open_output(out)
    load_output_decisions(output.out)  # refuse while a decisions file does not parse: say which line to fix
    records = {r.id: r for r in quarantined_records(output, None)}
    unknown = [i for i in ids if i not in records]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
        raise ReviewError(
            f"unknown record id(s) {shown}: not in the quarantine of run {output.source_run_id}; nothing was "
            f"recorded for any of the {len(ids)} id(s). 'sanitize review {output.out} list' shows the quarantined ids"
        )
    if decision == RELEASE:
        broken = [(i, [c for c in records[i].codes if c]) for i in ids
                  if any(e.get("detector") == ROW_CHECK_DETECTOR for e in records[i].reasons)]
        if broken:
            named = "; ".join(f"{i!r} ({', '.join(codes)})" for i, codes in broken[:10])
            raise ReviewError(
                f"cannot release {named}: they failed row checks, and a release only overrides detector flags. "
                "Fix the data (or the expectation suite) and run again; nothing was recorded"
            )
    reviewer = (reviewer or "").strip() or default_reviewer()
    now = utc_now()
    written = [
        {"id": i, "decision": decision, "reason": reason.strip(), "reviewer": reviewer, "time": now,
         "run_id": output.source_run_id, CONTENT_FIELD: records[i].content_sha256}
        for i in ids
    ]
    _write_batch(output.out, [json.dumps(w, sort_keys=False) for w in written])
    return written


# --------------------------------------------------------------------------- the publish lock


def _read_lock(path: str) -> dict | None:
    """The lock's holder (pid, host, since, token); None when it is gone, empty or unreadable."""
    try:
        value = json.loads(read_bytes(path))
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
    if exists(path):
        holder = _read_lock(path)
        if not (break_lock or _process_gone(holder)):
            raise _held(out, path, holder)
        _delete(path)
    with _fs().create(path) as fh:
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
    path = _join(out, LOCK_FILE)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now(), "token": uuid.uuid4().hex,
            "command": "sanitize publish"}
    (_take_remote if _remote(path) else _take_local)(out, path, info, break_lock)
    try:
        yield info
    finally:
        if (_read_lock(path) or {}).get("token") == info["token"]:
            _delete(path)


def _clean_orphans(output: Output) -> list[str]:
    """Remove what an interrupted publish left in clean/: ``.tmp`` files, and released shards that no
    manifest (manifest.json, manifest-*.json) names. Run only under the publish lock."""
    named = {s["path"] for s in output.manifest["clean"]["shards"]}
    for path in _list(_manifest_pattern(output.out)):
        try:
            other = json.loads(read_bytes(path))
            named.update(s["path"] for s in other["clean"]["shards"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("not removing unnamed released shards: %s is unreadable (%s)", path, exc)
            return []
    removed = []
    prefix = RELEASED_SHARD.split("{id}")[0]
    for path in _list(_glob_under(output.out, prefix + "*")):
        rel = path[len(output.out.rstrip("/")) + 1:].replace(os.sep, "/")
        if rel.endswith(".tmp") or (rel.endswith(".parquet") and rel not in named):
            _delete(path)
            removed.append(rel)
    if removed:
        log.warning("removed %d file(s) an interrupted publish left in %s/clean/: %s", len(removed), output.out,
                    ", ".join(removed))
    return removed


def _glob_under(out: str, rel_pattern: str) -> str:
    return (out.rstrip("/") if _remote(out) else glob.escape(out.rstrip("/"))) + "/" + rel_pattern


def _manifest_pattern(out: str) -> str:
    return _glob_under(out, SUPERSEDED_MANIFEST.format(id="*"))


# --------------------------------------------------------------------------- publish


def publication_id(source_run_id: str, decisions_sha256: str, previous: str) -> str:
    """A digest of what a publication applies to what: the same decisions on the same manifest give the
    same id (and file names), so a publish killed half way and run again writes the same publication."""
    digest = hashlib.sha256(f"{source_run_id}\n{decisions_sha256}\n{previous}".encode()).hexdigest()[:16]
    return "p" + digest


def _verify_shards(output: Output, shards: list[dict], what: str) -> None:
    from sanitizer.provenance import sha256_of

    for shard in shards:
        path = output.path(shard["path"])
        if not exists(path):
            raise IntegrityError(f"{what} shard {shard['path']} named in the manifest is missing; nothing was published")
        sha, _ = sha256_of(path)
        rows = _parquet_rows(path)
        if sha != shard["sha256"] or rows != shard["rows"]:
            raise IntegrityError(
                f"{what} shard {shard['path']} no longer matches the manifest (sha256 or row count changed); "
                "nothing was published"
            )


def _already_published(output: Output, decisions: ReviewDecisions) -> dict | None:
    if decisions.sha256 not in applied_decisions(output):
        return None
    current = output.publication
    what = f"publication {current['id']}" if current else f"run {output.source_run_id}, made with --decisions"
    return {"published": False, "publication_id": current["id"] if current else None,
            "manifest": output.manifest,
            "message": f"manifest.json ({what}) already applies every decision in "
                       f"{output.out}/{REVIEW_DIR}/; nothing new to publish"}


def _output_decisions(out: str) -> ReviewDecisions:
    decisions = load_output_decisions(out)
    if decisions is None or decisions.lines == 0:
        raise ReviewError(
            f"nothing to publish: {out}/{REVIEW_DIR}/ holds no decisions; record some with "
            f"'sanitize review {out} release|confirm ID... --reason TEXT'"
        )
    return decisions


def publish(out: str, break_lock: bool = False) -> dict[str, Any]:
    """Apply the latest decisions to the run in ``out``: a new manifest (written last, atomically).

    Returns the publication record (``published: False`` when the manifest already applies these decisions).
    Holds the publish lock throughout (see :func:`publish_lock`); ``break_lock`` takes over a held one.
    """
    output = open_output(out)
    decisions = _output_decisions(output.out)  # before the lock: nothing to publish writes nothing at all
    done = _already_published(output, decisions)
    if done is not None:
        return done
    with publish_lock(output.out, break_lock):
        output = open_output(out)  # again, under the lock: another publish may have finished meanwhile
        decisions = _output_decisions(output.out)
        done = _already_published(output, decisions)
        if done is not None:
            return done
        _clean_orphans(output)
        return _publish(output, decisions)


def _applicable(output: Output, decisions: ReviewDecisions, position: dict[str, int], entries: list[list[dict]],
                content: list[str]) -> tuple[list, list, list]:
    """(released [(row, summary)], confirmed [summary], not_applied [entry]) for the latest decisions."""
    released, confirmed, not_applied = [], [], []
    for rid, rec in decisions.latest.items():
        why = None
        if rid not in position:
            why = (f"not in the quarantine of run {output.source_run_id} (already clean there, or not in its "
                   "input)")
        else:
            state = binding(rec, content[position[rid]])
            if state == "unbound":
                why = (f"no content hash ({CONTENT_FIELD}): recorded by an older sanitizer, so it cannot be "
                       "bound to the record; review it again")
            elif state == "stale":
                why = (f"the record now at this id has other content (sha256 {content[position[rid]]}) than "
                       f"the decision was made for ({rec[CONTENT_FIELD]}); review it again")
        if why is not None:
            not_applied.append({"id": rid, "decision": rec["decision"], "file": _rel(output.out, rec.get("file")),
                                "line": rec.get("line"), "why": why})
            continue
        row = position[rid]
        codes = [e.get("code") for e in entries[row]]
        summary = {k: rec.get(k) for k in ("id", "decision", "reason", "reviewer", "time", "run_id", "line",
                                           CONTENT_FIELD)}
        summary["file"] = _rel(output.out, rec.get("file"))
        summary["codes"] = codes
        if rec["decision"] == RELEASE:
            if any(e.get("detector") == ROW_CHECK_DETECTOR for e in entries[row]):
                raise ReviewError(
                    f"decision on line {rec.get('line')} of {summary['file']} releases {rid!r}, which failed row "
                    f"checks ({', '.join(c for c in codes if c)}); a release only overrides detector flags. Record "
                    f"a 'confirm' for it (a later decision wins); nothing was published"
                )
            released.append((row, summary))
        else:
            confirmed.append(summary)
    released.sort(key=lambda item: natural_key(item[1]["id"]))
    confirmed.sort(key=lambda s: natural_key(s["id"]))
    return released, confirmed, not_applied


def _rel(out: str, path: str | None) -> str | None:
    if path is None:
        return None
    root = out.rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else path


def _write_parquet(path: str, table) -> None:
    import pyarrow.parquet as pq

    options = {"use_compliant_nested_type": False}  # the way Beam's Parquet sink writes the clean shards
    if _remote(path):
        with _fs().create(path) as fh:
            pq.write_table(table, fh, **options)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, **options)


def _publish(output: Output, decisions: ReviewDecisions) -> dict[str, Any]:
    import pyarrow as pa

    from sanitizer import provenance as prov

    out = output.out
    manifest = output.manifest
    prov_entry = manifest.get("provenance") or {}
    prov_path = output.path(prov_entry.get("path", prov.PROVENANCE))
    if not exists(prov_path) or _sha256_bytes(read_bytes(prov_path)) != prov_entry.get("sha256"):
        raise IntegrityError(f"{prov_path} is missing or no longer matches the manifest; nothing was published")
    provenance = json.loads(read_bytes(prov_path))
    input_rows = int(provenance.get("accounting", {}).get("input_rows", provenance.get("counts", {}).get("rows_in", -1)))
    _verify_shards(output, output.base_clean, "clean")
    _verify_shards(output, output.quarantine, "quarantine")

    quarantine = read_quarantine(output)
    q_ids = id_strings(quarantine.column(output.id_column)) if quarantine.num_rows else []
    position: dict[str, int] = {}
    problems: list[str] = []
    for i, rid in enumerate(q_ids):
        if rid in position:
            problems.append(f"record id {rid!r} appears more than once in the quarantine")
        position[rid] = i
    content = quarantine_content(output, quarantine) if quarantine.num_rows else []
    released, confirmed, not_applied = _applicable(output, decisions, position, _reasons_by_row(quarantine), content)

    pub_id = publication_id(output.source_run_id, decisions.sha256, manifest["run_id"])
    names = [f["name"] for f in manifest["schema"]]
    clean_schema = _clean_schema(output, quarantine, names)
    new_clean = list(output.base_clean)
    written: list[str] = []
    released_shard = None
    try:
        if released:
            rel = RELEASED_SHARD.format(id=pub_id)
            path = output.path(rel)
            if exists(path):
                raise ReviewError(f"{rel} already exists and a manifest names it; nothing was published")
            rows = pa.array([row for row, _ in released], type=pa.int64())
            table = quarantine.take(rows).select(names).cast(clean_schema)
            written.append(path + ".tmp")
            _write_parquet(path + ".tmp", table)  # not *.parquet until the manifest is about to name it
            sha, size = prov.sha256_of(path + ".tmp")
            released_shard = {"path": rel, "rows": _parquet_rows(path + ".tmp"), "bytes": size, "sha256": sha}
            new_clean.append(released_shard)

        # The invariant, from the files: input rows = clean rows + rows still held.
        released_ids = {s["id"] for _, s in released}
        clean_ids = set()
        for shard in output.base_clean:
            clean_ids.update(id_strings(_read_parquet(output.path(shard["path"]), [output.id_column]).column(0)))
        overlap = sorted(released_ids & clean_ids)
        if overlap:
            problems.append(f"released id(s) already in the clean shards: {overlap[:5]}")
        if released_shard is not None and released_shard["rows"] != len(released):
            problems.append(f"released shard has {released_shard['rows']} rows, expected {len(released)}")
        quarantine_file_rows = sum(s["rows"] for s in output.quarantine)
        clean_rows = sum(s["rows"] for s in new_clean)
        held_rows = quarantine_file_rows - len(released)
        if input_rows != clean_rows + held_rows:
            problems.append(
                f"input rows ({input_rows}) != clean rows ({clean_rows}) + quarantined rows still held ({held_rows})"
            )
        accounting = {"input_rows": input_rows, "clean_rows": clean_rows, "quarantined_rows": held_rows,
                      "released_rows": len(released), "holds": not problems, "problems": problems}
        if problems:
            raise IntegrityError(
                "the publication could not prove every record is accounted for, so nothing was published: "
                + "; ".join(problems)
            )

        old_id = manifest["run_id"]
        superseded_rel = SUPERSEDED_MANIFEST.format(id=old_id)
        superseded = output.path(superseded_rel)
        if exists(superseded) and read_bytes(superseded) != output.manifest_bytes:
            raise ReviewError(f"{superseded_rel} already exists with other contents; nothing was published")
        if not exists(superseded):
            _write_bytes_atomic(superseded, output.manifest_bytes)
        held = len(position) - len(released)
        record = {
            "publication_id": pub_id,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "source_run_id": output.source_run_id,
            "supersedes": {"run_id": old_id, "manifest": superseded_rel,
                           "sha256": _sha256_bytes(output.manifest_bytes)},
            "decisions": decisions.describe() | {"path": REVIEW_DIR},
            "applied": {"released": [s for _, s in released], "confirmed": confirmed},
            "not_applied": not_applied,
            "counts": {
                "released": len(released),
                "confirmed": len(confirmed),
                "pending": held - len(confirmed),
                "not_applied": len(not_applied),
                "stale": sum(1 for n in not_applied if "content" in n["why"]),
            },
            "accounting": accounting,
            "outputs": {"released_shard": released_shard, "clean": new_clean},
            "versions": prov.package_versions(),
        }
        record_rel = PUBLICATION_RECORD.format(id=pub_id)
        written.append(output.path(record_rel))
        prov.write_atomic(output.path(record_rel), record)
        record_sha, _ = prov.sha256_of(output.path(record_rel))

        new_manifest = dict(manifest)
        new_manifest["run_id"] = pub_id
        new_manifest["clean"] = {"rows": clean_rows, "shards": new_clean}
        new_manifest["quarantine"] = {
            "rows": held_rows,
            "shard_rows": quarantine_file_rows,
            "released_rows": len(released),
            "shards": list(output.quarantine),
        }
        new_manifest["publication"] = {
            "id": pub_id,
            "source_run_id": output.source_run_id,
            "supersedes": record["supersedes"],
            "record": {"path": record_rel, "sha256": record_sha},
            "decisions": {"path": REVIEW_DIR, "sha256": decisions.sha256, "lines": decisions.lines,
                          "files": decisions.files},
            "released_shards": [released_shard["path"]] if released_shard else [],
            "released_rows": len(released),
            "confirmed_rows": len(confirmed),
            "note": "quarantine shards are the run's own; quarantine.rows excludes the released rows "
                    f"listed in {record_rel}",
        }
        if released_shard is not None:  # the shard takes its name just before the manifest names it
            written.append(output.path(released_shard["path"]))
            _rename(output.path(released_shard["path"]) + ".tmp", output.path(released_shard["path"]))
        prov.write_atomic(output.path(prov.MANIFEST), new_manifest)  # last: publishing
    except BaseException:
        for path in written:
            try:
                _delete(path)
            except Exception:  # best effort: the next publish removes what is left
                log.warning("could not remove %s after a failed publish", path)
        raise
    record["published"] = True
    record["manifest"] = new_manifest
    return record


def _reasons_by_row(quarantine) -> list[list[dict]]:
    if REASONS_COLUMN not in quarantine.column_names:
        return [[] for _ in range(quarantine.num_rows)]
    return [_reasons(t) for t in quarantine.column(REASONS_COLUMN).to_pylist()]


def _clean_schema(output: Output, quarantine, names: list[str]):
    """The clean shards' Arrow schema (from a clean shard; else the quarantine's original columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if output.base_clean:
        path = output.path(output.base_clean[0]["path"])
        if _remote(path):
            with _fs().open(path) as fh:
                return pq.read_schema(fh)
        return pq.read_schema(path)
    return pa.schema([quarantine.schema.field(n) for n in names])


# --------------------------------------------------------------------------- run-time summary


def provenance_entry(decisions: ReviewDecisions | None, stats: dict[str, Any]) -> dict[str, Any] | None:
    """What a run with --decisions records in provenance: the files (sha256) and what they changed
    (``applied.stale``: rows whose decision was made for other content, or carries no content hash)."""
    if decisions is None:
        return None
    return dict(decisions.describe(), applied=stats.get("review", {}))
