"""A published run, read for review: its manifest, its quarantined records, recording decisions on them.

:func:`open_output` reads ``OUT/manifest.json``; :func:`quarantined_records` lists what the run holds
(with each record's content hash and latest decision; ``sanitize review OUT list``),
:func:`find_record` fetches one (``show``), and :func:`record_decisions` writes a ``release`` or
``confirm`` batch (see :mod:`sanitizer.runs.decisions` for the files). Nothing here publishes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable

from sanitizer.io import fs
from sanitizer.runs.decisions import (
    CONFIRMED_CODE,
    CONTENT_FIELD,
    DECISION_KINDS,
    RELEASE,
    ROW_CHECK_DETECTOR,
    ReviewDecisions,
    ReviewError,
    binding,
    default_reviewer,
    load_output_decisions,
    utc_now,
    write_batch,
)
from sanitizer.data.batch import id_strings, label_strings
from sanitizer.data.content_hash import content_sha256
from sanitizer.data.layout import CODES_COLUMN, CONTENT_COLUMN, MANIFEST, PROVENANCE, REASONS_COLUMN, SCORE_PREFIX
from sanitizer.data.reasons import parse


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
        return fs.join(self.out, rel)


def open_output(out: str) -> Output:
    out = out.rstrip("/")

    path = fs.join(out, MANIFEST)
    if not fs.exists(path):
        raise ReviewError(
            f"{out!r} holds no published run ({MANIFEST} is missing); pass the --output folder of a "
            "finished 'sanitize run'"
        )
    data = fs.read_bytes(path)
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
    applied = set()
    if output.publication:
        applied.add(output.publication.get("decisions", {}).get("sha256"))
    path = output.path((output.manifest.get("provenance") or {}).get("path", PROVENANCE))
    if fs.exists(path):
        try:
            applied.add(((json.loads(fs.read_bytes(path)).get("decisions")) or {}).get("sha256"))
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
            names = fs.parquet_names(path)
            tables.append(fs.read_parquet(path, [c for c in columns if c in names]))
        else:
            tables.append(fs.read_parquet(path))
    if not tables:
        names = columns or [output.id_column, output.label_column]
        return pa.table({c: pa.array([], type=pa.string()) for c in names})
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]


def parse_reasons(value) -> list[dict]:
    """The reason entries of a quarantine row's ``sanitizer_reasons`` (the list<struct> column, or the JSON
    text of runs published before it; [] when absent or unreadable)."""
    return parse(value)


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
    score_columns: list[str] = []
    if output.quarantine:
        names = fs.parquet_names(output.path(output.quarantine[0]["path"]))
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
    present = set(table.column_names)
    scores = {c[len(SCORE_PREFIX):]: table.column(c).to_pylist() for c in score_columns if c in present}
    latest = decisions.latest if decisions is not None else {}
    records = []
    for i, rid in enumerate(ids):
        entries = parse_reasons(reasons[i])
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
        table = fs.read_parquet(output.path(shard["path"]))
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
    write_batch(output.out, [json.dumps(w, sort_keys=False) for w in written])
    return written



def relative_to_out(out: str, path: str | None) -> str | None:
    """``path`` relative to the output folder ``out`` (unchanged when it lies elsewhere)."""
    if path is None:
        return None
    root = out.rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else path

