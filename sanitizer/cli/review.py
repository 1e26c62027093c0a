"""``sanitize review`` and ``sanitize publish``: look at the quarantine, decide, publish.

    sanitize review OUT list [--reason CODE] [--class LABEL] [--min-score X] [--detector NAME]
                             [--status pending|released|confirmed] [--limit N] [--json]
    sanitize review OUT show ID
    sanitize review OUT release ID... --reason TEXT [--reviewer NAME]
    sanitize review OUT confirm ID... --reason TEXT [--reviewer NAME]
    sanitize review OUT import FILE     (report.html's "Download decisions"; each line checked on its own)
    sanitize publish OUT

See :mod:`sanitizer.review` for the decisions files and what publishing does.

Everything printed from data (ids, labels, reasons, evidence, reviewer names, column names and values)
goes through :func:`printable`: control characters and bidi overrides are shown as escapes, so a record
id cannot clear or retitle the reviewer's terminal or reorder what they read.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from sanitizer import review as rv
from sanitizer.cli.terminal import printable


def add_parsers(sub) -> None:
    """Register ``review`` and ``publish`` on the top-level ``sanitize`` subparsers."""
    p = sub.add_parser(
        "review",
        help="list and inspect quarantined records; release or confirm them",
        description="Review what a run quarantined. Each decision command writes one new file under "
                    "OUT/review/decisions/ (never rewritten); decisions are bound to the record's content.",
    )
    p.add_argument("output", metavar="OUT", help="the --output folder of a finished run")
    actions = p.add_subparsers(dest="action", metavar="{list,show,release,confirm,import}")
    actions.required = True

    ls = actions.add_parser("list", help="a table of quarantined records (filters combine)")
    ls.add_argument("--reason", metavar="CODE", help="a reason code, or a prefix of one: 'invalid' matches invalid:nan:age")
    ls.add_argument("--class", dest="label", metavar="LABEL", help="records with this label")
    ls.add_argument("--detector", metavar="NAME", help="records flagged by this detector (or 'validation', 'review')")
    ls.add_argument("--min-score", dest="min_score", type=float, metavar="X",
                    help="records with a flag scoring at least X (of --detector, when given)")
    ls.add_argument("--status", choices=list(rv.STATUSES),
                    help="by latest review decision ('stale': made for other content than the record holds now)")
    ls.add_argument("--limit", type=_positive_int, metavar="N", help="show at most N records")
    ls.add_argument("--json", action="store_true", help="one JSON object per record instead of a table")

    show = actions.add_parser("show", help="one record: its columns, reasons with evidence, decisions")
    show.add_argument("id", metavar="ID")

    for name, verb in (("release", "release records to the clean set (a false alarm)"),
                       ("confirm", "confirm records stay quarantined")):
        a = actions.add_parser(name, help=verb)
        a.add_argument("ids", nargs="+", metavar="ID")
        a.add_argument("--reason", required=True, help="why (recorded with the decision)")
        a.add_argument("--reviewer", help="who decided (default: $USER)")
        a.add_argument("--group", action="store_true",
                       help="decide every quarantined member of each ID's copy group (the duplicates detector's "
                            "group: exact copies, near copies, label conflicts, a replicated poison) at once")

    imp = actions.add_parser(
        "import", help="take a decisions file (report.html's 'Download decisions') into OUT's decisions",
        description="Check each line of FILE against the run (id quarantined, content hash current, no release "
                    "of a failed row check) and record the good, new ones as one new decisions file. Exit 2 "
                    "when any line was refused (the good lines are still recorded).")
    imp.add_argument("file", metavar="FILE", help="a decisions file (.jsonl, local or scheme://)")

    pub = sub.add_parser(
        "publish",
        help="publish a new manifest that applies the review decisions",
        description="Write released rows as an extra clean shard and a new manifest (the old one is kept).",
    )
    pub.add_argument("output", metavar="OUT", help="the --output folder of a finished run")
    pub.add_argument("--break-lock", dest="break_lock", action="store_true",
                     help=f"take over {rv.LOCK_FILE} even if another publish holds it (only when that one is dead)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _closed_pipe_ok(fn, args: argparse.Namespace) -> int:
    try:
        return fn(args)
    except BrokenPipeError:  # `sanitize review OUT list | head`: the reader stopped; not an error
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run_review(args: argparse.Namespace) -> int:
    return _closed_pipe_ok(_review, args)


def say(text: Any = "") -> None:
    """print(), with :func:`printable` applied: the one way this module writes to the terminal."""
    print(printable(text))


def _review(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args)
    if args.action == "show":
        return _show(args)
    if args.action == "import":
        result = rv.import_decisions(args.output, args.file)
        for line in result.summary():
            say(line)
        return 2 if result.refused else 0
    ids = group_members(args.output, args.ids) if args.group else args.ids
    written = rv.record_decisions(args.output, ids, rv.RELEASE if args.action == "release" else rv.CONFIRM,
                                  args.reason, args.reviewer)
    verb = "released" if args.action == "release" else "confirmed"
    say(f"{verb} {len(written)} record(s) as {written[0]['reviewer']}: {', '.join(w['id'] for w in written)}")
    say(f"  recorded in {rv.decisions_dir(args.output.rstrip('/'))}/ (bound to each record's current content); "
        f"'sanitize publish {args.output}' publishes a manifest with the decisions applied")
    return 0


def _groups_of(record) -> set[str]:
    return {str(r["evidence"]["group"]) for r in record.reasons
            if r.get("detector") == "duplicates" and isinstance(r.get("evidence"), dict) and r["evidence"].get("group")}


def group_members(out: str, ids: list[str]) -> list[str]:
    """``ids`` and every quarantined record sharing a copy group with one of them, in the quarantine's order;
    a ReviewError naming the id when one is held by no copy group."""
    records = rv.quarantined_records(rv.open_output(out), None)
    by_id = {r.id: r for r in records}
    groups: set[str] = set()
    for i in ids:
        found = _groups_of(by_id[i]) if i in by_id else None
        if found is None:
            return list(ids)  # record_decisions names the unknown id
        if not found:
            raise rv.ReviewError(f"record {i!r} is not held as a copy (no duplicates group in its reasons); "
                                 "decide it without --group")
        groups |= found
    return list(dict.fromkeys(list(ids) + [r.id for r in records if _groups_of(r) & groups]))


def run_publish(args: argparse.Namespace) -> int:
    return _closed_pipe_ok(_publish, args)


def _publish(args: argparse.Namespace) -> int:
    result = rv.publish(args.output, break_lock=getattr(args, "break_lock", False))
    if not result["published"]:
        say(result["message"])
        return 0
    m = result["manifest"]
    counts = result["counts"]
    out = args.output.rstrip("/")
    say(f"published {result['publication_id']} (run {result['source_run_id']})")
    say(f"  released to clean:  {counts['released']:>8,}")
    say(f"  confirmed, held:    {counts['confirmed']:>8,}")
    say(f"  pending review:     {counts['pending']:>8,}")
    if counts["not_applied"]:
        say(f"  decisions not applied: {counts['not_applied']:,} ({counts.get('stale', 0):,} made for other "
            f"content than the record holds now; see {out}/{m['publication']['record']['path']})")
    say(f"  rows in {result['accounting']['input_rows']:,} = clean {m['clean']['rows']:,} "
        f"+ quarantined {m['quarantine']['rows']:,}")
    if result["outputs"]["released_shard"]:
        say(f"  released shard:     {out}/{result['outputs']['released_shard']['path']}")
    say(f"  manifest:           {out}/manifest.json (supersedes {out}/{result['supersedes']['manifest']})")
    say(f"  record:             {out}/{m['publication']['record']['path']}")
    return 0


# --------------------------------------------------------------------------- list


def _fmt_score(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _list(args: argparse.Namespace) -> int:
    output = rv.open_output(args.output)
    decisions = rv.load_output_decisions(output.out)
    records = rv.quarantined_records(output, decisions)
    matching = rv.filter_records(records, reason=args.reason, label=args.label, min_score=args.min_score,
                                 detector=args.detector, status=args.status)
    shown = matching[: args.limit] if args.limit else matching
    if args.json:  # json.dumps escapes every control character (and, ASCII only, every bidi control)
        for r in shown:
            print(json.dumps({"id": r.id, "label": r.label, "status": r.status, "codes": r.codes,
                              "scores": r.scores}, sort_keys=True))
        return 0
    header = ["ID", "LABEL", "STATUS", "REASONS", "SCORES"]
    rows = [
        [printable(cell) for cell in (
            r.id, "" if r.label is None else r.label, r.status, ",".join(c for c in r.codes if c),
            " ".join(f"{name}={_fmt_score(v)}" for name, v in r.scores.items()))]
        for r in shown
    ]
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(len(header) - 1)]
    for row in [header] + rows:
        say("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1])
    counts = {s: sum(1 for r in records if r.status == s) for s in rv.STATUSES}
    say(f"{len(shown)} shown of {len(matching)} matching; {len(records)} quarantined in run "
        f"{output.source_run_id} ({counts['pending']} pending, {counts['released']} released, "
        f"{counts['confirmed']} confirmed, {counts['stale']} stale)")
    if counts["stale"]:
        say(f"stale: the latest decision was made for other content than the record holds now (or carries no "
            f"content hash); it is not applied. 'sanitize review {output.out} show ID' says more")
    if decisions is not None and decisions.sha256 not in rv.applied_decisions(output):
        say(f"decisions not yet published: run 'sanitize publish {output.out}'")
    return 0


# --------------------------------------------------------------------------- show


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        items = [_fmt_value(v) for v in value[:64]]
        more = f", ... ({len(value)} values)" if len(value) > 64 else ""
        return "[" + ", ".join(items) + more + "]"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _status_lines(latest: dict | None, content: str | None, codes: list[str]) -> list[str]:
    """What the latest decision means for the record as it is now (bound, stale, unbound, none)."""
    state = rv.binding(latest, content)
    if state == "none":
        held = " (held by an earlier confirmation: review:confirmed)" if rv.CONFIRMED_CODE in codes else ""
        return [f"status: pending review{held}"]
    said = f"{latest['decision']} by {latest['reviewer']} at {latest['time']}: {latest['reason']}"
    if state == "bound":
        verb = "released" if latest["decision"] == rv.RELEASE else "confirmed"
        return [f"status: {verb} by {latest['reviewer']} at {latest['time']}: {latest['reason']}"]
    if state == "unbound":
        return [f"status: stale - the latest decision ({said}) has no content hash (recorded by an older "
                "sanitizer), so it is not applied; review the record again"]
    return [f"status: stale - the latest decision ({said}) no longer matches this record: it was made for "
            f"content sha256 {latest[rv.CONTENT_FIELD]}, the record now holds {content}. It is not applied; "
            "review the record again"]


def _show(args: argparse.Namespace) -> int:
    output = rv.open_output(args.output)
    decisions = rv.load_output_decisions(output.out)
    row, shard = rv.find_record(output, args.id)
    internal = (rv.REASONS_COLUMN, rv.CODES_COLUMN, rv.CONTENT_COLUMN)
    columns = {k: v for k, v in row.items() if k not in internal and not k.startswith(rv.SCORE_PREFIX)}
    scores = {k[len(rv.SCORE_PREFIX):]: v for k, v in row.items() if k.startswith(rv.SCORE_PREFIX) and v is not None}
    entries = rv.parse_reasons(row.get(rv.REASONS_COLUMN))
    content = row.get(rv.CONTENT_COLUMN)
    history = [] if decisions is None else _history(decisions, args.id)
    latest = decisions.latest.get(args.id) if decisions is not None else None

    say(f"record {args.id}   (run {output.source_run_id}, {shard})")
    for line in _status_lines(latest, content, list(row.get(rv.CODES_COLUMN) or [])):
        say(line)
    say(f"content sha256: {content}")
    say("columns:")
    width = max(len(k) for k in columns) if columns else 0
    for name, value in columns.items():
        say(f"  {name.ljust(width)}  {_fmt_value(value)}")
    if scores:
        say("scores:")
        width = max(len(k) for k in scores)
        for name, value in scores.items():
            say(f"  {name.ljust(width)}  {_fmt_score(value)}")
    say(f"reasons ({len(entries)}):")
    for n, e in enumerate(entries, start=1):
        bits = [f"detector {e.get('detector')}"]
        if e.get("score") is not None:
            bits.append(f"score {_fmt_score(e['score'])}")
        if e.get("threshold") is not None:
            bits.append(f"threshold {_fmt_score(e['threshold'])}")
        if e.get("action"):
            bits.append(f"action {e['action']}")
        say(f"  {n}. {e.get('code')}  ({', '.join(bits)})")
        evidence = e.get("evidence")
        if evidence:
            say("     evidence:")
            for line in pretty(evidence, "       "):
                say(line)
    if history:
        say("decisions (oldest first; the last one counts while the content matches):")
        for h in history:
            match = {"bound": "", "stale": "  [made for other content]", "unbound": "  [no content hash]"}
            where = rv.relative_to_out(output.out, h.get("file"))
            say(f"  {where} line {h['line']}: {h['time']} {h['decision']} by {h['reviewer']}: {h['reason']}"
                f"{match[rv.binding(h, content)]}")
    return 0


def _compact(value: Any) -> str:
    return json.dumps(_rounded(value), sort_keys=True, default=str)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}") if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def pretty(value: Any, indent: str = "", width: int = 110) -> list[str]:
    """Evidence as indented 'key: value' lines; short values and list items stay on one line."""
    lines: list[str] = []
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            v = value[key]
            text = v if isinstance(v, str) else _compact(v)
            if len(indent) + len(str(key)) + 2 + len(text) <= width or not isinstance(v, (dict, list, tuple)):
                lines.append(f"{indent}{key}: {text}")
            else:
                lines.append(f"{indent}{key}:")
                lines.extend(pretty(v, indent + "  ", width))
    elif isinstance(value, (list, tuple)):
        for item in value:
            text = _compact(item)
            if len(indent) + 2 + len(text) <= width or not isinstance(item, (dict, list, tuple)):
                lines.append(f"{indent}- {text}")
            else:
                sub = pretty(item, indent + "  ", width)
                lines.append(f"{indent}- {sub[0].lstrip()}" if sub else f"{indent}-")
                lines.extend(sub[1:])
    else:
        lines.append(f"{indent}{value if isinstance(value, str) else _compact(value)}")
    return lines




def _history(decisions: rv.ReviewDecisions, record_id: str) -> list[dict]:
    """Every decision on ``record_id``, oldest first, from the files the decisions were read from."""
    records: list[dict] = []
    for path in rv.decision_sources(decisions.path) or []:
        records += [r for r in rv.parse_decisions(rv.read_bytes(path), path) if r["id"] == record_id]
    return records
