"""``sanitize review OUT import FILE``: take a decisions file (report.html's "Download decisions") into OUT.

The file has the format of the files ``release``/``confirm`` write (:mod:`sanitizer.runs.decisions`):
one JSON object per line with id, decision, reason, reviewer, time, run_id and content_sha256. Unlike
:func:`~sanitizer.runs.decisions.parse_decisions`, which stops at the first broken line, every line is
checked on its own and refused or taken on its own: its fields; its id, which must be a record in the
quarantine of OUT's run; its content hash, which must equal that record's current one (a decision made
for other content, or one carrying no hash, is refused); and a release of a row that failed a row check
is refused (a release overrides detectors, not broken data). A line identical to a decision already in
OUT's decisions (or to an earlier line of the file) is counted as already recorded and not written
again, so importing the same file twice is harmless. The lines taken keep their own reviewer, time,
reason and run_id (a decision made on another run of the same data is fine while the content hash
matches) and are written as one new decisions file (:func:`~sanitizer.runs.decisions.write_batch`);
no existing file is rewritten, and nothing is written when no line is taken.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sanitizer.io import fs
from sanitizer.runs.decisions import (
    CONTENT_FIELD,
    DECISION_KINDS,
    RELEASE,
    REQUIRED_FIELDS,
    ROW_CHECK_DETECTOR,
    ReviewError,
    decision_sources,
    load_output_decisions,
    parse_decisions,
    write_batch,
)
from sanitizer.data.layout import REVIEW_DIR
from sanitizer.review.output import (
    Output,
    QuarantinedRecord,
    open_output,
    quarantined_records,
)

_FIELDS = ("id", "decision", "reason", "reviewer", "time", "run_id", CONTENT_FIELD)  # as written, in this order
_IDENTITY = ("id", "decision", CONTENT_FIELD, "time", "reviewer", "reason")  # "the same decision"
_LINE_FORMAT = (f"each line is one JSON object with {', '.join(REQUIRED_FIELDS)}, {CONTENT_FIELD} "
                "(and run_id), as report.html's 'Download decisions' writes it")


@dataclass
class ImportResult:
    """What :func:`import_decisions` did with each line of a decisions file."""

    source: str  # the file imported
    out: str
    run_id: str  # OUT's run (the one whose quarantine the lines were checked against)
    lines: int = 0  # decision lines in the file (blank lines not counted)
    taken: list[tuple[int, dict]] = field(default_factory=list)  # (line number, decision as written)
    refused: list[tuple[int, str | None, str]] = field(default_factory=list)  # (line number, id or None, why)
    already: int = 0  # lines identical to a recorded decision (or to an earlier line): not written again
    written: str | None = None  # the new decisions file, None when nothing was taken
    other_runs: dict[str, int] = field(default_factory=dict)  # run_id -> lines taken that were decided there
    notes: list[str] = field(default_factory=list)  # taken lines that supersede a later recorded decision

    @property
    def counts(self) -> dict[str, int]:
        """Lines taken per decision kind."""
        return {kind: sum(1 for _, d in self.taken if d["decision"] == kind) for kind in DECISION_KINDS}

    def summary(self) -> list[str]:
        """What the CLI prints (data in it still needs the terminal-safe printing of the CLI)."""
        out = self.out
        if self.taken:
            kinds = ", ".join(f"{n} {kind}" for kind, n in self.counts.items() if n)
            lines = [(f"took {len(self.taken)} of {self.lines} decision line(s) from {self.source} ({kinds}) "
                      f"into run {self.run_id}"),
                     f"  recorded in {self.written} (a new file; no existing decisions file was changed)"]
        elif self.lines == 0:
            lines = [f"{self.source} holds no decision lines; nothing was written"]
        else:
            lines = [f"took nothing from {self.source} ({self.lines} decision line(s)); nothing was written"]
        if self.already:
            lines.append(f"  already recorded: {self.already} line(s) identical to a decision in {out}'s decisions "
                         "(or to an earlier line of the file); not written again")
        for run_id, n in sorted(self.other_runs.items()):
            lines.append(f"  {n} line(s) taken were decided on run {run_id}, not {self.run_id}: taken because the "
                         "records still hold the content they were decided for")
        lines += [f"  note: {note}" for note in self.notes]
        if self.refused:
            kept = (f"the other {len(self.taken)} line(s) were taken and recorded" if self.taken
                    else "no line was taken")
            lines.append(f"refused {len(self.refused)} line(s); {kept}. Fix these lines and import the file again "
                         "(the lines taken now then count as already recorded):")
            lines += [f"  line {n}: {why}" for n, _, why in self.refused]
        if self.taken or self.already:
            lines.append(f"'sanitize publish {out}' publishes a manifest with the decisions applied")
        return lines


def _read(path: str) -> bytes:
    if not fs.exists(path):
        raise ReviewError(f"decisions file {path!r} does not exist; pass the file report.html's 'Download "
                          "decisions' saved (a .jsonl file); nothing was recorded")
    try:
        return fs.read_bytes(path)
    except OSError as exc:  # a folder, no permission, an object store error
        raise ReviewError(f"cannot read decisions file {path!r} ({type(exc).__name__}: {exc}); pass a readable "
                          "file; nothing was recorded") from None


def _utc(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _non_empty(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _format_problems(obj, out: str) -> list[str]:
    """Everything wrong with one decoded line's fields (empty: well formed)."""
    if not isinstance(obj, dict):
        return [f"expected a JSON object, got {type(obj).__name__}; {_LINE_FORMAT}"]
    problems = []
    missing = [k for k in (*REQUIRED_FIELDS, CONTENT_FIELD) if obj.get(k) is None]
    if CONTENT_FIELD in missing:
        problems.append(f"carries no {CONTENT_FIELD}, so it is bound to no record content and cannot be applied; "
                        f"decide the record again in this run's report.html (or with 'sanitize review {out} "
                        "release|confirm ID --reason TEXT')")
        missing.remove(CONTENT_FIELD)
    if missing:
        problems.append(f"missing field(s) {', '.join(missing)}; {_LINE_FORMAT}")
    rid = obj.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid) == ""):
        problems.append(f"id must be a non-empty string or an integer, got {rid!r}")
    if obj.get("decision") is not None and obj["decision"] not in DECISION_KINDS:
        problems.append(f"unknown decision {obj['decision']!r}: use {' or '.join(DECISION_KINDS)}")
    for key in ("reason", "reviewer"):
        if obj.get(key) is not None and not _non_empty(obj[key]):
            problems.append(f"{key} must be a non-empty text, got {obj[key]!r}")
    time = obj.get("time")
    if time is not None and not (isinstance(time, str) and _utc(time) is not None):
        problems.append(f"time must be an ISO 8601 time such as 2026-11-29T08:30:00.123Z, got {time!r}")
    if obj.get("run_id") is not None and not _non_empty(obj["run_id"]):
        problems.append(f"run_id must be a non-empty text (or left out), got {obj['run_id']!r}")
    content = obj.get(CONTENT_FIELD)
    if content is not None and not (isinstance(content, str) and re.fullmatch(r"[0-9a-f]{64}", content)):
        problems.append(f"{CONTENT_FIELD} must be 64 lowercase hex digits (the record's content hash), got {content!r}")
    return problems


def _record_problem(decision: dict, record: QuarantinedRecord | None, output: Output) -> str | None:
    """Why a well-formed decision cannot be applied to OUT's run (None: it can)."""
    rid, out = decision["id"], output.out
    if record is None:
        return (f"unknown id {rid!r}: not a quarantined record of run {output.source_run_id}. Was the file "
                f"downloaded from this run's report.html? 'sanitize review {out} list' shows the quarantined ids")
    if decision[CONTENT_FIELD] != record.content_sha256:
        return (f"record {rid!r} changed since the decision: the decision was made for content sha256 "
                f"{decision[CONTENT_FIELD]}, the record now holds {record.content_sha256}. Decide it again on "
                f"this run's report.html (or 'sanitize review {out} show {rid}')")
    if decision["decision"] == RELEASE and any(e.get("detector") == ROW_CHECK_DETECTOR for e in record.reasons):
        failed = ", ".join(c for c in record.codes if c)
        return (f"cannot release {rid!r}: it failed row checks ({failed}), and a release only overrides detector "
                "flags, not broken data. Confirm it instead, or fix the data (or the expectation suite) and run again")
    return None


def _recorded(out: str) -> tuple[set[tuple], dict[str, dict]]:
    """(identities of every decision line in OUT's decisions, id -> latest decision); refuses (ConfigError
    naming the line to fix) while a decisions file of OUT does not parse."""
    decisions = load_output_decisions(out)
    if decisions is None:
        return set(), {}
    seen = set()
    for path in decision_sources(fs.join(out, REVIEW_DIR)) or []:
        seen.update(_identity(r) for r in parse_decisions(fs.read_bytes(path), path))
    return seen, decisions.latest


def _identity(decision: dict) -> tuple:
    return tuple(str(decision.get(k)) if k == "id" else decision.get(k) for k in _IDENTITY)


def _superseding(lineno: int, decision: dict, latest: dict | None) -> str | None:
    """A note when OUT's latest decision on the id is a different, later one: the import now overrides it."""
    if latest is None or _identity(latest) == _identity(decision):
        return None
    then, now = _utc(str(latest.get("time"))), _utc(decision["time"])
    if then is None or now is None or then <= now:
        return None
    return (f"line {lineno} ({decision['decision']} of {decision['id']!r}, {decision['time']}) is now the latest "
            f"decision on it, over the later {latest['decision']} by {latest['reviewer']} at {latest['time']}; "
            f"record that one again if it should stand")


def import_decisions(out: str, path: str) -> ImportResult:
    """Check every line of the decisions file at ``path`` against OUT's run and write the acceptable,
    new ones as one new decisions file of OUT (see the module docstring). Raises ReviewError when
    ``path`` or OUT cannot be read, ConfigError while OUT's own decisions do not parse; refusals of
    single lines are in the result."""
    output = open_output(out)
    data = _read(path)
    recorded, latest = _recorded(output.out)
    records = {r.id: r for r in quarantined_records(output, None)}
    result = ImportResult(source=path, out=output.out, run_id=output.source_run_id)
    seen = set(recorded)
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        if not raw.strip():
            continue
        result.lines += 1
        try:
            obj = json.loads(raw.decode("utf-8-sig" if lineno == 1 else "utf-8"))  # a BOM some editors write
        except UnicodeDecodeError:
            result.refused.append((lineno, None, "not UTF-8 text; save the file as UTF-8"))
            continue
        except json.JSONDecodeError as exc:
            result.refused.append((lineno, None, f"not valid JSON: {exc.msg} (column {exc.colno}); {_LINE_FORMAT}"))
            continue
        except (ValueError, RecursionError) as exc:  # an integer too long to convert, nesting too deep
            result.refused.append((lineno, None, f"not a decision ({type(exc).__name__}: {exc}); {_LINE_FORMAT}"))
            continue
        rid = str(obj["id"]) if isinstance(obj, dict) and isinstance(obj.get("id"), (str, int)) else None
        problems = _format_problems(obj, output.out)
        if problems:
            result.refused.append((lineno, rid, "; ".join(problems)))
            continue
        decision = {k: (rid if k == "id" else obj[k]) for k in _FIELDS if obj.get(k) is not None}
        why = _record_problem(decision, records.get(rid), output)
        if why is not None:
            result.refused.append((lineno, rid, why))
            continue
        if _identity(decision) in seen:
            result.already += 1
            continue
        seen.add(_identity(decision))
        result.taken.append((lineno, decision))
        note = _superseding(lineno, decision, latest.get(rid))
        if note:
            result.notes.append(note)
        if decision.get("run_id") not in (None, output.source_run_id):
            result.other_runs[decision["run_id"]] = result.other_runs.get(decision["run_id"], 0) + 1
    if result.taken:
        result.written = write_batch(output.out, [json.dumps(d) for _, d in result.taken])
    return result
