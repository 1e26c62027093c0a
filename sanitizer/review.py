"""Human review of quarantined records: decisions, and publishing them.

A reviewer looks at what a run quarantined (``sanitize review OUT list|show``)
and decides, record by record, to **release** it (a false alarm: it belongs in
the clean set) or to **confirm** it (it stays quarantined, whatever the
detectors say next time). Decisions are appended to
``OUT/review/decisions.jsonl``, one JSON object per line::

    {"id": "digit-00042", "decision": "release", "reason": "a clean 7, thick stroke",
     "reviewer": "ana", "time": "2026-11-29T08:30:00.123Z", "run_id": "20261129T081828Z-50b5a6a4e6"}

The file is only ever appended to: a later decision on the same id supersedes
an earlier one (last line wins) and the history stays. Nothing here rewrites it.

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

``sanitize run --decisions FILE`` (config key ``decisions``) carries the
decisions into a new run: a released record stays clean even when a detector
flags it again (the flags are counted as overridden), a confirmed record stays
quarantined with reason ``review:confirmed``. A row that fails a row check
(null, NaN, wrong length, a row-level expectation) cannot be released: a
release overrides detectors, not broken data.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from sanitizer.errors import ConfigError, IntegrityError, SanitizerError

REVIEW_DIR = "review"
DECISIONS_FILE = f"{REVIEW_DIR}/decisions.jsonl"
RELEASE, CONFIRM = "release", "confirm"
DECISION_KINDS = (RELEASE, CONFIRM)
REQUIRED_FIELDS = ("id", "decision", "reason", "reviewer", "time")
REVIEW_DETECTOR = "review"
CONFIRMED_CODE = "review:confirmed"
ROW_CHECK_DETECTOR = "validation"  # row checks and row-level expectations: a release cannot override them
RELEASED_SHARD = "clean/part-released-{id}.parquet"
PUBLICATION_RECORD = f"{REVIEW_DIR}/publication-{{id}}.json"
SUPERSEDED_MANIFEST = "manifest-{id}.json"

REASONS_COLUMN = "sanitizer_reasons"  # the same names as sanitizer.beam.transforms (not imported: no Beam here)
CODES_COLUMN = "sanitizer_reason_codes"
SCORE_PREFIX = "sanitizer_score_"


class ReviewError(SanitizerError):
    """A review command cannot do what was asked (unknown id, nothing to publish...); nothing was written."""


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


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_parquet(path: str, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    if _remote(path):
        with _fs().open(path) as fh:
            return pq.read_table(fh, columns=columns)
    return pq.read_table(path, columns=columns)


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
class ReviewDecisions:
    """A parsed decisions file: the last decision per record id. Travels to workers inside the Plan."""

    path: str
    sha256: str
    lines: int  # decision lines in the file (blank lines not counted)
    latest: dict[str, dict] = field(default_factory=dict)  # id -> its last decision
    released: frozenset = frozenset()
    confirmed: frozenset = frozenset()

    @classmethod
    def from_records(cls, path: str, sha256: str, records: list[dict]) -> "ReviewDecisions":
        latest: dict[str, dict] = {}
        for rec in records:
            latest[rec["id"]] = rec  # last wins
        released = frozenset(i for i, r in latest.items() if r["decision"] == RELEASE)
        confirmed = frozenset(i for i, r in latest.items() if r["decision"] == CONFIRM)
        return cls(path, sha256, len(records), latest, released, confirmed)

    def lookup(self, ids) -> tuple[Any, Any]:
        """(released, confirmed) boolean masks over an array of id strings (None for a missing id)."""
        import numpy as np

        n = len(ids)
        released = np.fromiter((i is not None and i in self.released for i in ids), dtype=bool, count=n)
        confirmed = np.fromiter((i is not None and i in self.confirmed for i in ids), dtype=bool, count=n)
        return released, confirmed

    def confirmed_reason(self, record_id: str) -> dict[str, Any]:
        """The reason entry a confirmed record carries in the quarantine (detector "review")."""
        rec = self.latest[record_id]
        evidence = {k: rec.get(k) for k in ("decision", "reason", "reviewer", "time", "run_id")}
        evidence["decisions_sha256"] = self.sha256
        return {"detector": REVIEW_DETECTOR, "code": CONFIRMED_CODE, "action": "quarantine", "score": None,
                "threshold": None, "evidence": evidence}

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "lines": self.lines,
            "records": len(self.latest),
            "release": len(self.released),
            "confirm": len(self.confirmed),
        }


def _check_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def parse_decisions(data: bytes, path: str) -> list[dict]:
    """Every decision in the file, in order; a broken line raises ConfigError naming the line."""

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
        records.append(dict(obj, id=str(rid), line=lineno))
    return records


def load_decisions(path: str) -> ReviewDecisions:
    """Read and check a decisions file (raises ConfigError naming a broken line); never writes it."""
    if not exists(path):
        raise ConfigError(f"decisions file {path!r} does not exist")
    data = read_bytes(path)
    return ReviewDecisions.from_records(path, _sha256_bytes(data), parse_decisions(data, path))


def decisions_path(out: str) -> str:
    return _join(out, DECISIONS_FILE)


def load_output_decisions(out: str) -> ReviewDecisions | None:
    path = decisions_path(out)
    return load_decisions(path) if exists(path) else None


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


def _append_lines(path: str, lines: list[str]) -> None:
    payload = "".join(line + "\n" for line in lines).encode("utf-8")
    if _remote(path):  # object stores cannot append: write old + new under a temporary name, then rename
        old = read_bytes(path) if exists(path) else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        _write_bytes_atomic(path, old + payload)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "ab") as fh:
        if fh.tell() > 0:
            with open(path, "rb") as check:
                check.seek(-1, os.SEEK_END)
                if check.read(1) != b"\n":
                    payload = b"\n" + payload
        fh.write(payload)  # one write: all of a command's decisions, or none
        fh.flush()
        os.fsync(fh.fileno())


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
    import pyarrow.parquet as pq

    tables = []
    for shard in output.quarantine:
        path = output.path(shard["path"])
        if columns is not None:
            if _remote(path):
                with _fs().open(path) as fh:
                    names = pq.read_schema(fh).names
            else:
                names = pq.read_schema(path).names
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


@dataclass
class QuarantinedRecord:
    id: str
    label: str | None
    codes: list[str]
    reasons: list[dict]
    scores: dict[str, float | None]  # detector -> score column value (None where not scored)
    decision: dict | None  # the latest decision on it, if any

    @property
    def status(self) -> str:
        """The latest decision in OUT's decisions file; else "confirmed" when a run held it for an earlier
        confirmation (reason review:confirmed); else "pending"."""
        if self.decision is None:
            return "confirmed" if CONFIRMED_CODE in self.codes else "pending"
        return "released" if self.decision["decision"] == RELEASE else "confirmed"


def quarantined_records(output: Output, decisions: ReviewDecisions | None) -> list[QuarantinedRecord]:
    """Every quarantined record (without its feature columns), with its latest decision."""
    import pyarrow.parquet as pq

    from sanitizer.records import label_strings

    score_columns: list[str] = []
    if output.quarantine:
        first = output.path(output.quarantine[0]["path"])
        if _remote(first):
            with _fs().open(first) as fh:
                names = pq.read_schema(fh).names
        else:
            names = pq.read_schema(first).names
        score_columns = [n for n in names if n.startswith(SCORE_PREFIX)]
    table = read_quarantine(output, [output.id_column, output.label_column, REASONS_COLUMN, CODES_COLUMN]
                            + score_columns)
    if table.num_rows == 0:
        return []
    ids = id_strings(table.column(output.id_column))
    labels = label_strings(table.column(output.label_column))
    reasons = table.column(REASONS_COLUMN).to_pylist() if REASONS_COLUMN in table.column_names else [None] * len(ids)
    codes = table.column(CODES_COLUMN).to_pylist() if CODES_COLUMN in table.column_names else [None] * len(ids)
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
    """(Python dict of the record's quarantine row, shard path) or raise ReviewError."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for shard in output.quarantine:
        table = _read_parquet(output.path(shard["path"]))
        ids = pc.cast(table.column(output.id_column), pa.string())
        mask = pc.fill_null(pc.equal(ids, record_id), False)
        if pc.any(mask).as_py():
            return table.filter(mask).slice(0, 1).to_pylist()[0], shard["path"]
    raise ReviewError(
        f"record id {record_id!r} is not in the quarantine of run {output.source_run_id} "
        f"({output.out}/quarantine/); 'sanitize review {output.out} list' shows the quarantined ids"
    )


# --------------------------------------------------------------------------- release / confirm


def record_decisions(out: str, ids: list[str], decision: str, reason: str, reviewer: str | None = None) -> list[dict]:
    """Append one decision per id to OUT/review/decisions.jsonl; all or nothing. Returns the records written."""
    if decision not in DECISION_KINDS:
        raise ReviewError(f"decision must be one of {', '.join(DECISION_KINDS)}, got {decision!r}")
    if not reason or not reason.strip():
        raise ReviewError("--reason must say why (a non-empty text); nothing was recorded")
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise ReviewError("name at least one record id; nothing was recorded")
    output = open_output(out)
    path = decisions_path(output.out)
    if exists(path):
        load_decisions(path)  # refuse to append to a file that no longer parses: say which line to fix
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
         "run_id": output.source_run_id}
        for i in ids
    ]
    _append_lines(path, [json.dumps(w, sort_keys=False) for w in written])
    return written


# --------------------------------------------------------------------------- publish


def publication_id(source_run_id: str, decisions_sha256: str, previous: str) -> str:
    now = datetime.now(timezone.utc)
    digest = hashlib.sha256(f"{source_run_id}\n{decisions_sha256}\n{previous}".encode()).hexdigest()[:10]
    return now.strftime("%Y%m%dT%H%M%SZ") + "-p" + digest


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


def publish(out: str) -> dict[str, Any]:
    """Apply the latest decisions to the run in ``out``: a new manifest (written last, atomically).

    Returns the publication record (``published: False`` when the manifest already applies these decisions).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sanitizer import provenance as prov

    output = open_output(out)
    out = output.out
    decisions = load_output_decisions(out)
    if decisions is None or decisions.lines == 0:
        raise ReviewError(
            f"nothing to publish: {decisions_path(out)} holds no decisions; record some with "
            f"'sanitize review {out} release|confirm ID... --reason TEXT'"
        )
    if decisions.sha256 in applied_decisions(output):
        current = output.publication
        what = f"publication {current['id']}" if current else f"run {output.source_run_id}, made with --decisions"
        return {"published": False, "publication_id": current["id"] if current else None,
                "manifest": output.manifest,
                "message": f"manifest.json ({what}) already applies every decision in "
                           f"{decisions_path(out)}; nothing new to publish"}

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
    entries = _reasons_by_row(quarantine)
    released, confirmed, not_applied = [], [], []
    for rid, rec in decisions.latest.items():
        if rid not in position:
            not_applied.append({"id": rid, "decision": rec["decision"], "line": rec.get("line"),
                                "why": f"not in the quarantine of run {output.source_run_id} (already clean there, "
                                       "or not in its input)"})
            continue
        row = position[rid]
        codes = [e.get("code") for e in entries[row]]
        summary = {k: rec.get(k) for k in ("id", "decision", "reason", "reviewer", "time", "run_id", "line")}
        summary["codes"] = codes
        if rec["decision"] == RELEASE:
            if any(e.get("detector") == ROW_CHECK_DETECTOR for e in entries[row]):
                raise ReviewError(
                    f"decision on line {rec.get('line')} releases {rid!r}, which failed row checks "
                    f"({', '.join(c for c in codes if c)}); a release only overrides detector flags. Record a "
                    f"'confirm' for it (a later line wins); nothing was published"
                )
            released.append((row, summary))
        else:
            confirmed.append(summary)
    released.sort(key=lambda item: natural_key(item[1]["id"]))
    confirmed.sort(key=lambda s: natural_key(s["id"]))

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
                raise ReviewError(f"{rel} already exists; run 'sanitize publish {out}' again")
            rows = pa.array([row for row, _ in released], type=pa.int64())
            table = quarantine.take(rows).select(names).cast(clean_schema)
            # written the way Beam's Parquet sink writes the clean shards (list items named "item")
            options = {"use_compliant_nested_type": False}
            if _remote(path):
                with _fs().create(path) as fh:
                    pq.write_table(table, fh, **options)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                pq.write_table(table, path, **options)
            written.append(path)
            sha, size = prov.sha256_of(path)
            released_shard = {"path": rel, "rows": _parquet_rows(path), "bytes": size, "sha256": sha}
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
            "decisions": decisions.describe() | {"path": DECISIONS_FILE},
            "applied": {"released": [s for _, s in released], "confirmed": confirmed},
            "not_applied": not_applied,
            "counts": {
                "released": len(released),
                "confirmed": len(confirmed),
                "pending": held - len(confirmed),
                "not_applied": len(not_applied),
            },
            "accounting": accounting,
            "outputs": {"released_shard": released_shard, "clean": new_clean},
            "versions": prov.package_versions(),
        }
        record_rel = PUBLICATION_RECORD.format(id=pub_id)
        prov.write_atomic(output.path(record_rel), record)
        written.append(output.path(record_rel))
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
            "decisions": {"path": DECISIONS_FILE, "sha256": decisions.sha256, "lines": decisions.lines},
            "released_shards": [released_shard["path"]] if released_shard else [],
            "released_rows": len(released),
            "confirmed_rows": len(confirmed),
            "note": "quarantine shards are the run's own; quarantine.rows excludes the released rows "
                    f"listed in {record_rel}",
        }
        prov.write_atomic(output.path(prov.MANIFEST), new_manifest)  # last: publishing
    except BaseException:
        for path in written:
            if exists(path):
                if _remote(path):
                    _fs().delete([path])
                else:
                    os.remove(path)
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
    """What a run with --decisions records in provenance: the file (sha256) and what it changed."""
    if decisions is None:
        return None
    return dict(decisions.describe(), applied=stats.get("review", {}))
