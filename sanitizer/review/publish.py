"""``sanitize publish OUT``: apply the latest review decisions to a run as a new manifest.

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
again writes the same publication. One publish at a time holds the output
lock (:mod:`sanitizer.review.lock`), the one a ``sanitize run`` holds too. The released shard is written under a
``.tmp`` name and renamed just before the manifest; a released shard that no
manifest names (left by a kill between the two) and any ``.tmp`` leftover are
removed by the next publish. Publishing the same decisions again changes nothing.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from datetime import datetime, timezone
from typing import Any

from sanitizer.io import fs
from sanitizer.errors import IntegrityError
from sanitizer.runs.record import RunRecord
from sanitizer.runs.decisions import (
    CONTENT_FIELD,
    RELEASE,
    ROW_CHECK_DETECTOR,
    ReviewDecisions,
    ReviewError,
    binding,
    load_output_decisions,
)
from sanitizer.data.layout import MANIFEST, REASONS_COLUMN, REVIEW_DIR
from sanitizer.review.lock import publish_lock
from sanitizer.data.batch import id_strings
from sanitizer.review.output import (
    Output,
    applied_decisions,
    natural_key,
    open_output,
    parse_reasons,
    quarantine_content,
    read_quarantine,
    relative_to_out,
)
from sanitizer.runs import provenance as prov
from sanitizer.runs.provenance import sha256_of

log = logging.getLogger("sanitizer.review")  # the name these warnings have always carried

RELEASED_SHARD = "clean/part-released-{id}.parquet"
PUBLICATION_RECORD = f"{REVIEW_DIR}/publication-{{id}}.json"
SUPERSEDED_MANIFEST = "manifest-{id}.json"


def _clean_orphans(output: Output) -> list[str]:
    """Remove what an interrupted publish left in clean/: ``.tmp`` files, and released shards that no
    manifest (manifest.json, manifest-*.json) names. Run only under the publish lock."""
    named = {s["path"] for s in output.manifest["clean"]["shards"]}
    for path in fs.list_files(_manifest_pattern(output.out)):
        try:
            other = json.loads(fs.read_bytes(path))
            named.update(s["path"] for s in other["clean"]["shards"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("not removing unnamed released shards: %s is unreadable (%s)", path, exc)
            return []
    removed = []
    prefix = RELEASED_SHARD.split("{id}")[0]
    for path in fs.list_files(_glob_under(output.out, prefix + "*")):
        rel = path[len(output.out.rstrip("/")) + 1:].replace(os.sep, "/")
        if rel.endswith(".tmp") or (rel.endswith(".parquet") and rel not in named):
            fs.delete(path)
            removed.append(rel)
    if removed:
        log.warning("removed %d file(s) an interrupted publish left in %s/clean/: %s", len(removed), output.out,
                    ", ".join(removed))
    return removed


def _glob_under(out: str, rel_pattern: str) -> str:
    return (out.rstrip("/") if fs.is_remote(out) else glob.escape(out.rstrip("/"))) + "/" + rel_pattern


def _manifest_pattern(out: str) -> str:
    return _glob_under(out, SUPERSEDED_MANIFEST.format(id="*"))


# --------------------------------------------------------------------------- publish


def publication_id(source_run_id: str, decisions_sha256: str, previous: str) -> str:
    """A digest of what a publication applies to what: the same decisions on the same manifest give the
    same id (and file names), so a publish killed half way and run again writes the same publication."""
    digest = hashlib.sha256(f"{source_run_id}\n{decisions_sha256}\n{previous}".encode()).hexdigest()[:16]
    return "p" + digest


def _verify_shards(output: Output, shards: list[dict], what: str) -> None:
    for shard in shards:
        path = output.path(shard["path"])
        if not fs.exists(path):
            raise IntegrityError(f"{what} shard {shard['path']} named in the manifest is missing; nothing was published")
        sha, _ = sha256_of(path)
        rows = fs.parquet_rows(path)
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
            not_applied.append({"id": rid, "decision": rec["decision"], "file": relative_to_out(output.out, rec.get("file")),
                                "line": rec.get("line"), "why": why})
            continue
        row = position[rid]
        codes = [e.get("code") for e in entries[row]]
        summary = {k: rec.get(k) for k in ("id", "decision", "reason", "reviewer", "time", "run_id", "line",
                                           CONTENT_FIELD)}
        summary["file"] = relative_to_out(output.out, rec.get("file"))
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



def _write_parquet(path: str, table, compression: str = "none") -> None:
    import pyarrow.parquet as pq

    # The way Beam's Parquet sink writes the clean shards, with the run's codec (runs before the
    # manifest recorded one wrote uncompressed shards).
    options = {"use_compliant_nested_type": False, "compression": compression}
    if fs.is_remote(path):
        with fs.create(path) as fh:
            pq.write_table(table, fh, **options)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):  # a leftover of ours, or a link someone put there: the name goes, not its target
        os.unlink(path)
    with open(path, "xb") as fh:  # O_EXCL: never written through a link created meanwhile
        pq.write_table(table, fh, **options)


def _publish(output: Output, decisions: ReviewDecisions) -> dict[str, Any]:
    import pyarrow as pa

    manifest = output.manifest
    prov_entry = manifest.get("provenance") or {}
    prov_path = output.path(prov_entry.get("path", prov.PROVENANCE))
    if not fs.exists(prov_path) or fs.sha256_bytes(fs.read_bytes(prov_path)) != prov_entry.get("sha256"):
        raise IntegrityError(f"{prov_path} is missing or no longer matches the manifest; nothing was published")
    record = RunRecord.from_dict(json.loads(fs.read_bytes(prov_path)))
    input_rows = record.accounting.input_rows or record.counts.rows_in
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
            if fs.exists(path):
                raise ReviewError(f"{rel} already exists and a manifest names it; nothing was published")
            rows = pa.array([row for row, _ in released], type=pa.int64())
            table = quarantine.take(rows).select(names).cast(clean_schema)
            written.append(path + ".tmp")
            # not *.parquet until the manifest is about to name it
            _write_parquet(path + ".tmp", table, output.manifest.get("compression", "none"))
            sha, size = prov.sha256_of(path + ".tmp")
            released_shard = {"path": rel, "rows": fs.parquet_rows(path + ".tmp"), "bytes": size, "sha256": sha}
            new_clean.append(released_shard)

        # The invariant, from the files: input rows = clean rows + rows still held.
        released_ids = {s["id"] for _, s in released}
        clean_ids = set()
        for shard in output.base_clean:
            clean_ids.update(id_strings(fs.read_parquet(output.path(shard["path"]), [output.id_column]).column(0)))
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
        if fs.exists(superseded) and fs.read_bytes(superseded) != output.manifest_bytes:
            raise ReviewError(f"{superseded_rel} already exists with other contents; nothing was published")
        if not fs.exists(superseded):
            fs.write_bytes_atomic(superseded, output.manifest_bytes)
        held = len(position) - len(released)
        record = {
            "publication_id": pub_id,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "source_run_id": output.source_run_id,
            "supersedes": {"run_id": old_id, "manifest": superseded_rel,
                           "sha256": fs.sha256_bytes(output.manifest_bytes)},
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
            fs.rename(output.path(released_shard["path"]) + ".tmp", output.path(released_shard["path"]))
        prov.write_atomic(output.path(MANIFEST), new_manifest)  # last: publishing
    except BaseException:
        for path in written:
            try:
                fs.delete(path)
            except Exception:  # best effort: the next publish removes what is left
                log.warning("could not remove %s after a failed publish", path)
        raise
    record["published"] = True
    record["manifest"] = new_manifest
    return record


def _reasons_by_row(quarantine) -> list[list[dict]]:
    if REASONS_COLUMN not in quarantine.column_names:
        return [[] for _ in range(quarantine.num_rows)]
    return [parse_reasons(t) for t in quarantine.column(REASONS_COLUMN).to_pylist()]


def _clean_schema(output: Output, quarantine, names: list[str]):
    """The clean shards' Arrow schema (from a clean shard; else the quarantine's original columns)."""
    import pyarrow as pa

    if output.base_clean:
        return fs.parquet_schema(output.path(output.base_clean[0]["path"]))
    return pa.schema([quarantine.schema.field(n) for n in names])

