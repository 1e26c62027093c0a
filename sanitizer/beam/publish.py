"""Publishing as pipeline stages: hash, account, validate, record, and write the manifest last.

Everything a run does after its shards are written happens here, inside the
Beam graph, so it happens on every runner - including Dataflow behind a Flex
Template or Airflow's Beam operator, where the launching process submits the
job and never runs code after it::

    inputs  ─ HashInputs (parallel) ─────────────────┐
    clean shards ─ DescribeShards (parallel) ────────┤ side inputs, all complete
    quarantine shards ─ DescribeShards (parallel) ───┤ before Publish starts:
    stats, fit summary, file rows, duplicate ids,    │ it depends on every write
    sample validation ───────────────────────────────┤
                                                     ▼
                                 Publish: inputs unchanged? accounting holds?
                                 data-set expectations -> provenance.json,
                                 report.html, lineage.json -> manifest.json (last)

``Publish`` emits the URI of the manifest it wrote. When the accounting or a
blocking expectation fails it writes provenance (status ``failed``), the report
and a FAIL lineage event, raises, and so fails the job: no manifest.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import apache_beam as beam

from sanitizer.io import fs as fs_util
from sanitizer.runs import guard, provenance as prov
from sanitizer.runs.lineage import emit as lineage_emit
from sanitizer.data.column_kinds import counted_vocabulary
from sanitizer.data.layout import MANIFEST
from sanitizer.settings.config import Config
from sanitizer.runs.claim import check_identical_inputs, release_marker
from sanitizer.runs.decisions import provenance_entry as review_provenance
from sanitizer.errors import InputError, SanitizerError
from sanitizer.beam.plan import Plan
from sanitizer.runs.record import Accounting, Columns, Counts, RunRecord, Shard, Timings
from sanitizer.beam.dataset_checks import finish_validation
from sanitizer.report import write_report
from sanitizer.runs.output_lock import release_token

log = logging.getLogger("sanitizer")


@dataclass(frozen=True)
class RunContext:
    """What the pipeline's construction knew and publication needs: small, picklable, no open handles."""

    run_id: str
    out: str
    started_at: str  # ISO 8601, UTC
    started_wall: float  # time.time() when construction started
    plan_s: float
    runner: str
    pipeline_options: list[str]
    warnings: list[str] = field(default_factory=list)
    lineage: Any = None  # sanitizer.runs.lineage.emit.LineageContext: the run's OpenLineage naming and transport
    lock_token: str | None = None  # the output lock publication releases when it ends (None: the launcher does)
    baseline: dict | None = None  # the verified baseline the detectors fitted on (sanitizer.beam.baseline)


# --------------------------------------------------------------------------- inputs


def when(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="microseconds")


def hash_input(index: int, plan: Plan) -> dict[str, Any]:
    """The provenance record of input file ``index``: sha256 and bytes read now, size and time from planning."""
    f = plan.files[index]
    try:
        sha, size = prov.sha256_of(f.path)
    except OSError as exc:
        raise InputError(f"input file {f.path!r} could not be read ({exc}); fix or remove it and run again") from None
    item = {"index": index, "uri": f.path, "relpath": f.relpath, "format": f.format, "bytes": size,
            "sha256": sha, "rows": None, "modified_at": when(f.mtime)}
    if f.aliases:
        item["aliases"] = list(f.aliases)
    return item


def check_inputs_unchanged(files, inputs: list[dict]) -> None:
    """Fail when an input file's size or modification time differs from what planning saw.

    The sampling pass, the scoring pass and the provenance sha256 each read the
    files; if one changed in between they may have seen different data. Checked
    at publication (after the last read), before anything is published; the
    bytes hashed for provenance must also have been as many as planning saw.
    """
    for f, item in zip(files, inputs):
        try:
            now = fs_util.stat(f.path)
        except Exception as exc:  # noqa: BLE001 - a file that is gone has changed too
            now, detail = None, f"it can no longer be read: {exc}"
        else:
            detail = f"size {f.size} -> {now[0]} bytes, modified {when(f.mtime)} -> {when(now[1])}"
            if item["bytes"] != f.size:
                now, detail = None, f"{f.size} bytes at planning, {item['bytes']} bytes hashed"
        if now is None or now != (f.size, f.mtime):
            raise SanitizerError(
                f"input file {f.path!r} changed during the run ({detail}); the passes that sampled, scored and "
                "hashed it may have read different data, so nothing was published. Run again once the input "
                "is no longer being written"
            )


# --------------------------------------------------------------------------- shards


def _sorted_list(items, key: str) -> list:
    return sorted(items, key=lambda item: item[key])


class _Collect(beam.PTransform):
    """Spread the elements over workers, apply ``fn`` to each, gather the results as one sorted list."""

    def __init__(self, fn, key: str, *args):
        super().__init__()
        self.fn, self.key, self.args = fn, key, args

    def expand(self, pcoll):
        return (
            pcoll
            | "Spread" >> beam.Reshuffle()
            | "Each" >> beam.Map(self.fn, *self.args)
            | "Gather" >> beam.combiners.ToList()
            | "Sort" >> beam.Map(_sorted_list, self.key)
        )


def _as_global(value):
    """Sink outputs carry the end-of-time timestamp; give them an ordinary one so any runner can combine them."""
    return beam.window.TimestampedValue(value, 0)


class Publish(beam.PTransform):
    """The finishing stages (module docstring). ``parts`` holds the pipeline's singleton PCollections."""

    def __init__(self, ctx: RunContext, plan: Plan, config: Config, parts: dict[str, Any]):
        super().__init__()
        self.ctx, self.plan, self.config, self.parts = ctx, plan, config, parts

    def expand(self, pbegin):
        parts = self.parts
        p = pbegin.pipeline
        inputs = (p | "ListInputs" >> beam.Create(list(range(len(self.plan.files))))
                  | "HashInputs" >> _Collect(hash_input, "index", self.plan))
        shards = {}
        for name in ("clean", "quarantine"):
            shards[name] = (parts[f"{name}_files"]
                            | f"Restamp{name.title()}" >> beam.Map(_as_global)
                            | f"Describe{name.title()}Shards" >> _Collect(prov.describe_shard, "path"))
        side = {name: beam.pvalue.AsSingleton(pc) for name, pc in parts.items() if not name.endswith("_files")}
        return (
            p
            | "Start" >> beam.Create([None])
            | "Publish" >> beam.Map(
                publish, self.ctx, self.plan, self.config,
                inputs=beam.pvalue.AsSingleton(inputs),
                clean=beam.pvalue.AsSingleton(shards["clean"]),
                quarantine=beam.pvalue.AsSingleton(shards["quarantine"]),
                **side,
            )
        )


# --------------------------------------------------------------------------- publish


def publish(_, ctx: RunContext, plan: Plan, config: Config, **parts) -> str:
    """Account, validate, write provenance, report and lineage, then the manifest; its URI, or raise.

    When the lock was handed to the pipeline (``ctx.lock_token``), it is released here, published or not.
    """
    try:
        return _publish(ctx, plan, config, **parts)
    finally:
        release_token(ctx.out, ctx.lock_token)


def _publish(ctx: RunContext, plan: Plan, config: Config, *, inputs, clean, quarantine, stats: Counts, fit,
             file_rows, duplicates=None, sample_validation=None, drift=None) -> str:
    t_publish = time.time()
    out = ctx.out
    inputs = [{k: v for k, v in item.items() if k != "index"} for item in inputs]
    check_identical_inputs(inputs)
    check_inputs_unchanged(plan.files, inputs)
    for i, item in enumerate(inputs):
        item["rows"] = int(file_rows.get(str(i), 0))
    expected = sum(plan.file_rows.values()) if plan.file_rows is not None else None
    accounting = prov.check_accounting(stats, clean, quarantine, expected)
    duplicates = duplicates or {"duplicated_ids": 0, "examples": []}
    if duplicates.get("duplicated_ids"):
        examples = ", ".join(f"{e['id']!r} x{e['count']}" for e in duplicates["examples"][:5])
        accounting.problems.append(
            f"id column {plan.id_column!r} has {duplicates['duplicated_ids']} duplicated value(s) ({examples}); "
            "record ids must be unique: fix the data, or leave out --id-column to use generated ids"
        )
    if stats.rows_in == 0 and accounting.holds:
        accounting.problems.append("the input has no data rows")

    validation, failed_expectations = (None, [])
    if plan.suite is not None:
        validation, failed_expectations = finish_validation(plan, config, out, sample_validation, stats, clean,
                                                            ctx.run_id)
        if failed_expectations:
            validation["blocked_publication"] = config.validation.dataset_failure == "stop"
    blocked = bool(failed_expectations) and config.validation.dataset_failure == "stop"
    drifted = drift is not None and drift.get("verdict") == "critical"  # a critical drift withholds publication
    guard_reading = guard.verdict(config.guard, stats)
    kinds = tuple(counted_vocabulary(k, stats.levels[k.name], config.categorical_max_levels)
                  if k.vocabulary is not None and sum(stats.levels.get(k.name, {}).values()) else k for k in plan.kinds)

    record = RunRecord(
        run_id=ctx.run_id,
        status=("succeeded" if accounting.holds and not blocked and not drifted and not guard_reading["tripped"]
                else "failed"),
        started_at=ctx.started_at,
        finished_at=datetime.now(timezone.utc).isoformat(),
        seed=config.seed,
        runner=ctx.runner,
        pipeline_options=list(ctx.pipeline_options),
        versions=prov.package_versions(),
        config=config.to_dict(),
        inputs=inputs,
        skipped_inputs=[s.to_dict() for s in plan.skipped_inputs],
        columns=Columns(label=plan.label_column, id=plan.id_output, id_generated=plan.id_column is None,
                        features=[fc.name for fc in plan.features], feature_count=len(plan.feature_names),
                        ignored=[c.to_dict() for c in plan.ignored], id_inferred=plan.id_inferred,
                        kinds=[k.to_dict() for k in kinds]),
        warnings=list(ctx.warnings),
        sample=fit.get("sample", {}),
        detectors=fit.get("detectors", {}),
        counts=stats,
        validation=validation,
        decisions=review_provenance(plan.decisions, stats),  # review decisions honoured (--decisions)
        guard=guard_reading,
        accounting=accounting,
        clean=[Shard(prov.relative(s["path"], out), s["rows"], s["bytes"], s["sha256"]) for s in clean],
        quarantine=[Shard(prov.relative(s["path"], out), s["rows"], s["bytes"], s["sha256"]) for s in quarantine],
        extra={} if ctx.baseline is None else {"baseline": ctx.baseline, "drift": drift},
        timings=Timings(plan_s=ctx.plan_s, pipeline_s=round(t_publish - ctx.started_wall - ctx.plan_s, 3),
                        fit_s=dict(fit.get("seconds") or {}), scoring_s=dict(stats.seconds)),
    )
    record.timings.finalize_s = round(time.time() - t_publish, 3)
    record.timings.total_s = round(time.time() - ctx.started_wall, 3)
    prov.write_atomic(f"{out}/{prov.PROVENANCE}", record.to_dict())
    _write_report(out, record)
    failure = _failure(config, accounting, failed_expectations, stats.rows_in, out, guard_reading, drift)
    if failure is not None:
        lineage_emit.record_run(record, out, "FAIL", str(failure), ctx.lineage)  # written and sent
        raise failure
    completed = lineage_emit.record_run(record, out, context=ctx.lineage, send_now=False)

    prov_sha, _ = prov.sha256_of(f"{out}/{prov.PROVENANCE}")
    manifest = prov.build_manifest(
        ctx.run_id, out, plan.output_schema, clean, quarantine, plan.id_output, plan.label_column,
        [fc.name for fc in plan.features], prov_sha, config.compression,
        prov.manifest_columns(kinds, plan.image_size, _absolute(plan.media_base)),
    )
    if ctx.baseline is not None:  # what this run's reference was: a training job can follow the chain of runs
        manifest["baseline"] = {k: ctx.baseline.get(k) for k in ("kind", "path", "run_id", "manifest_sha256")}
    path = f"{out}/{MANIFEST}"
    prov.write_atomic(path, manifest)  # last: publishing
    release_marker(out)
    lineage_emit.send(completed, ctx.lineage)  # COMPLETE once the manifest is published
    return path


def _absolute(folder: str | None) -> str | None:
    """``folder`` as an absolute path (a URI as it is): where the training loader finds relative image paths,
    whatever folder it runs in."""
    if not folder or "://" in folder:
        return folder
    return os.path.abspath(folder)


def _failure(config: Config, accounting: Accounting, failed_expectations: list, rows_in: int, out: str,
             guard_reading: dict | None = None, drift: dict | None = None):
    """The error that withholds publication, or None."""
    if accounting.holds and rows_in and guard_reading and guard_reading["tripped"]:
        return guard.error(guard_reading, out)
    if failed_expectations and config.validation.dataset_failure == "stop":
        named = "; ".join(
            f"{f['expectation']}({f['column'] or 'table'}) on {f['on']}: observed {f['observed']}"
            for f in failed_expectations[:10]
        )
        return SanitizerError(
            f"data-set-level expectations failed, so nothing was published (no manifest): {named}. "
            f"Details in {out}/validation/; set validation.dataset_failure: warn to publish anyway"
        )
    if accounting.holds and drift is not None and drift.get("verdict") == "critical":
        named = "; ".join(f"{a['column']} ({a['statistic']} {a['value']:.3g} > {a['threshold']:.3g})"
                          for a in drift["alarms"] if a.get("severity") == "critical")
        return SanitizerError(
            f"the new data drifted from the baseline on a column marked critical, so nothing was published (no "
            f"manifest): {named}. Every column's scores are in {out}/provenance.json under drift; set "
            "baseline.drift.columns.COLUMN.severity: warning to publish anyway")
    if accounting.holds:
        return None
    if rows_in == 0:
        return SanitizerError(
            f"input {config.input!r} has no data rows, so nothing was published; check the input path"
        )
    return prov.integrity_error(accounting)


def _write_report(out: str, record: RunRecord) -> None:
    """The reviewer's page; a report problem is logged, never a reason to withhold clean data."""
    try:
        write_report(out, record)
    except Exception as exc:  # noqa: BLE001 - the report is a convenience, the shards are the product
        log.warning("could not write %s/report.html: %s", out, exc)
