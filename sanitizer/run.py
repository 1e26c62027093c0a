"""Run one sanitize job end to end: plan, pipeline, accounting, provenance, manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from datetime import datetime, timezone
from typing import Any

from sanitizer import lineage, progress
from sanitizer import provenance as prov
from sanitizer.config import Config
from sanitizer.errors import ConfigError, SanitizerError
from sanitizer.plan import Plan, make_plan
from sanitizer.review import provenance_entry as review_provenance

log = logging.getLogger("sanitizer")


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def prepare_output(out: str, overwrite: bool) -> None:
    """Refuse to mix runs in one folder; with overwrite, unpublish the old run first (manifest goes first)."""
    fs = _fs()
    existing = [p for p in (prov.MANIFEST, prov.PROVENANCE, "clean", "quarantine") if fs.exists(f"{out}/{p}")]
    if existing and not overwrite:
        raise ConfigError(
            f"output {out!r} already holds a run ({', '.join(existing)}); "
            "choose an empty folder or pass --overwrite to replace it"
        )
    for name in (prov.MANIFEST, prov.MANIFEST + ".tmp", prov.PROVENANCE, "report.html", "lineage.json"):
        if fs.exists(f"{out}/{name}"):
            fs.delete([f"{out}/{name}"])
    if existing:  # manifests superseded by `sanitize publish` name shards that are about to go
        fs.delete([m.path for m in fs.match([f"{out}/manifest-*.json"])[0].metadata_list])
    for name in ("clean", "quarantine", "_work"):
        if fs.exists(f"{out}/{name}"):
            fs.delete([f"{out}/{name}"])
    if "://" not in out:
        os.makedirs(out, exist_ok=True)


def _pipeline_options(beam_args: list[str]):
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from sanitizer.beam.options import check_code_options

    if not any(a.startswith("--default_sdk_harness_log_level") for a in beam_args):
        # Worker processes (multi-processing, portable, Dataflow) log at INFO by default: too chatty for a CLI.
        beam_args = beam_args + ["--default_sdk_harness_log_level=WARNING"]
    options = PipelineOptions(beam_args)
    check_code_options(options)  # --runner / --beam_plugins must not name code to import
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    return options, standard.runner


_ERROR_RE = re.compile(r"(?:InputError|ConfigError|SanitizerError): (.+?)(?:\s\[while running|\n|$)")


def _explain_pipeline_error(exc: BaseException) -> SanitizerError:
    text = str(exc)
    match = _ERROR_RE.search(text)
    if match:
        return SanitizerError(match.group(1).strip() + " (nothing was published)")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return SanitizerError(f"the pipeline failed, nothing was published: {type(exc).__name__}: {first[:500]}")


def run_id_for(started: datetime, config: Config, inputs: list[dict]) -> str:
    digest = hashlib.sha256(
        json.dumps({"config": config.to_dict(), "inputs": [i["sha256"] for i in inputs]}, sort_keys=True).encode()
    ).hexdigest()[:10]
    return started.strftime("%Y%m%dT%H%M%SZ") + "-" + digest


def run(config: Config, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Sanitize ``config.input`` into ``config.output``; returns the provenance dict.

    Raises SanitizerError (with a message saying what to do) for anything the
    user can fix; in that case no manifest is written.
    """
    import apache_beam as beam

    from sanitizer.beam.pipeline import build, work_dir

    beam_args = list(beam_args or [])
    options, runner = _pipeline_options(beam_args)  # first: a refused option must not touch the output
    started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    plan: Plan = make_plan(config)
    for warning in plan.warnings:
        log.warning(warning)
    out = config.output.rstrip("/")
    prepare_output(out, config.overwrite)
    progress.stage("planning: hashing inputs")
    inputs = []
    for i, f in enumerate(plan.files):
        sha, size = prov.sha256_of(f.path)
        inputs.append({"uri": f.path, "relpath": f.relpath, "format": f.format, "bytes": size, "sha256": sha,
                       "rows": None})
    run_id = run_id_for(started, config, inputs)
    timings["plan_s"] = round(time.perf_counter() - t0, 3)

    t1 = time.perf_counter()
    try:
        p = beam.Pipeline(options=options)
        build(p, plan, config, out)
        progress.stage("pipeline: sampling, fitting, scoring")
        result = p.run()
        state = result.wait_until_finish()
    except SanitizerError:
        raise
    except Exception as exc:
        raise _explain_pipeline_error(exc) from None
    if state is not None and str(state) not in ("DONE", "PipelineState.DONE"):
        raise SanitizerError(f"the pipeline ended in state {state}; nothing was published")
    timings["pipeline_s"] = round(time.perf_counter() - t1, 3)

    t2 = time.perf_counter()
    progress.stage("finalising: verifying shards, writing provenance")
    work = work_dir(out)
    stats = _read_json(f"{work}/stats.json", default={})
    fit = _read_json(f"{work}/fit.json", default={})
    file_rows = _read_json(f"{work}/file_rows.json", default={})
    for i, item in enumerate(inputs):
        item["rows"] = int(file_rows.get(str(i), 0))
    clean = prov.describe_shards(f"{out}/clean")
    quarantine = prov.describe_shards(f"{out}/quarantine")
    rows_in = int(stats.get("rows_in", 0))
    expected = sum(plan.file_rows.values()) if plan.file_rows is not None else None
    accounting = prov.check_accounting(
        rows_in, sum(s["rows"] for s in clean), sum(s["rows"] for s in quarantine), stats, expected
    )
    duplicates = _read_json(f"{work}/duplicate_ids.json", default={"duplicated_ids": 0, "examples": []})
    if duplicates.get("duplicated_ids"):
        examples = ", ".join(f"{e['id']!r} x{e['count']}" for e in duplicates["examples"][:5])
        accounting["holds"] = False
        accounting["problems"].append(
            f"id column {plan.id_column!r} has {duplicates['duplicated_ids']} duplicated value(s) ({examples}); "
            "record ids must be unique: fix the data, or leave out --id-column to use generated ids"
        )
    if rows_in == 0 and accounting["holds"]:
        accounting["holds"] = False
        accounting["problems"].append("the input has no data rows")

    validation, failed_expectations = (None, [])
    if plan.suite is not None:
        validation, failed_expectations = _finish_validation(plan, config, out, work, stats, clean)
        if failed_expectations:
            validation["blocked_publication"] = config.validation.dataset_failure == "stop"

    provenance = {
        "run_id": run_id,
        "status": "succeeded" if accounting["holds"] else "failed",
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "seed": config.seed,
        "runner": runner,
        "pipeline_options": prov.redact(beam_args),
        "versions": prov.package_versions(),
        "config": config.to_dict(),
        "inputs": inputs,
        "columns": {
            "label": plan.label_column,
            "id": plan.id_output,
            "id_generated": plan.id_column is None,
            "features": [fc.name for fc in plan.features],
            "feature_count": len(plan.feature_names),
        },
        "warnings": list(plan.warnings),
        "sample": fit.get("sample", {}),
        "detectors": fit.get("detectors", {}),
        "counts": stats,
        "validation": validation,
        "decisions": review_provenance(plan.decisions, stats),  # review decisions honoured (--decisions)
        "accounting": accounting,
        "outputs": {
            "clean": [dict(s, path=prov.relative(s["path"], out)) for s in clean],
            "quarantine": [dict(s, path=prov.relative(s["path"], out)) for s in quarantine],
        },
        "timings": timings,
    }
    timings["finalize_s"] = round(time.perf_counter() - t2, 3)
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    if failed_expectations and config.validation.dataset_failure == "stop":
        provenance["status"] = "failed"
    prov.write_atomic(f"{out}/{prov.PROVENANCE}", provenance)
    _write_report(out, provenance)
    failure = None
    if failed_expectations and config.validation.dataset_failure == "stop":
        named = "; ".join(
            f"{f['expectation']}({f['column'] or 'table'}) on {f['on']}: observed {f['observed']}"
            for f in failed_expectations[:10]
        )
        failure = SanitizerError(
            f"data-set-level expectations failed, so nothing was published (no manifest): {named}. "
            f"Details in {out}/validation/; set validation.dataset_failure: warn to publish anyway"
        )
    elif not accounting["holds"]:
        if rows_in == 0:
            failure = SanitizerError(
                f"input {config.input!r} has no data rows, so nothing was published; check the input path"
            )
        else:
            try:
                prov.fail_integrity(accounting)
            except SanitizerError as exc:
                failure = exc
    if failure is not None:
        lineage.record_run(provenance, out, state="FAIL", error=str(failure))
        raise failure
    lineage.record_run(provenance, out)

    prov_sha, _ = prov.sha256_of(f"{out}/{prov.PROVENANCE}")
    manifest = prov.build_manifest(
        run_id, out, plan.output_schema, clean, quarantine, plan.id_output, plan.label_column,
        [fc.name for fc in plan.features], prov_sha,
    )
    _fs().delete([work])
    prov.write_atomic(f"{out}/{prov.MANIFEST}", manifest)  # last: publishing
    return provenance


def _write_report(out: str, provenance: dict) -> None:
    """The reviewer's page; a report problem is logged, never a reason to withhold clean data."""
    from sanitizer.report import write_report

    try:
        write_report(out, provenance)
    except Exception as exc:  # noqa: BLE001 - the report is a convenience, the shards are the product
        log.warning("could not write %s/report.html: %s", out, exc)


def _finish_validation(plan: Plan, config: Config, out: str, work: str, stats: dict, clean: list[dict]):
    """Data-set checks on the totals, the sample and the clean output; results to OUT/validation/."""
    import pyarrow.parquet as pq

    from sanitizer import validation as v

    suite = plan.suite
    sample_part = _read_json(f"{work}/validation_sample.json", default={"result": {}, "summary": []})
    by_class = stats.get("by_class", {})
    rows = {k: int(n) for k, n in by_class.get("rows", {}).items()}
    held = {k: int(n) for k, n in by_class.get("quarantined", {}).items()}
    clean_rows = sum(s["rows"] for s in clean)
    checks = list(sample_part.get("summary", []))
    checks += v.check_totals(suite, int(stats.get("rows_in", 0)), rows, "input totals")
    checks += v.check_totals(suite, clean_rows, {k: n - held.get(k, 0) for k, n in rows.items()}, "clean output")

    columns = [c for c in plan.output_schema.names if c in suite.columns()]
    tables = []
    for shard in clean:
        with _fs().open(shard["path"]) as fh:
            tables.append(pq.read_table(fh, columns=columns))
    clean_frame = v.to_pandas(pa_concat(tables, plan, columns), set(columns))
    clean_result = v.validate_frame(suite, clean_frame, [e for e in suite.expectations if e["type"] not in v.ROW_COUNT])
    checks += v.summarise(clean_result, "clean output")

    directory = f"{out}/validation"
    if "://" not in directory:
        os.makedirs(directory, exist_ok=True)
    results = {"input_sample": sample_part.get("result", {}), "clean_output": clean_result}
    for name, result in results.items():
        prov.write_atomic(f"{directory}/{name}.json", result)
    prov.write_atomic(f"{directory}/summary.json", checks)
    docs = v.write_data_docs(results, f"{directory}/data_docs") if "://" not in directory else None

    failed = [c for c in checks if not c["success"]]
    row_failures = {k: n for k, n in stats.get("by_reason", {}).items() if k.startswith("validation:")}
    info = {
        "suite": suite.describe(),
        "dataset_failure": config.validation.dataset_failure,
        "row_level_expectations": len(suite.row_level),
        "rows_failing_row_level": row_failures,
        "checks": checks,
        "success": not failed,
        "data_docs": docs,
    }
    return info, failed


def pa_concat(tables, plan: Plan, columns):
    import pyarrow as pa

    if tables:
        return pa.concat_tables(tables)
    return pa.schema([plan.output_schema.field(c) for c in columns]).empty_table()


def _read_json(path: str, default):
    fs = _fs()
    if not fs.exists(path):
        return default
    with fs.open(path) as fh:
        return json.loads(fh.read().decode("utf-8"))
