"""OpenLineage: one RunEvent per sanitize run, built from its provenance, written to OUT/lineage.json.

The event (https://openlineage.io/spec, RunEvent of spec 2-0-2) names the job, the run
(a UUID derived from the run id), every input file as an input dataset and the clean and
quarantine folders as output datasets, with the standard facets a lineage service reads:

- run: ``processing_engine`` (Apache Beam and its version), ``errorMessage`` when the run
  failed, and ``sanitizer`` (this project's own facet: run id, status, runner, seed, counts);
- job: ``jobType`` (BATCH) and ``documentation``;
- inputs: ``schema``, ``version`` (the file's sha256), and as input facets
  ``inputStatistics`` / ``dataQualityMetrics`` (rows, bytes) and ``dataQualityAssertions``
  (the Great Expectations checks of the run, when a suite was used);
- outputs: ``schema``, ``version`` (the run id), ``dataQualityAssertions`` for the checks run
  on the clean output, and the ``outputStatistics`` output facet (rows, bytes, files).

A FAIL event lists no outputs: a failed run publishes nothing (no manifest).

Dataset names follow OpenLineage's naming conventions: a local file is namespace ``file``,
name its absolute path; ``gs://bucket/key`` is namespace ``gs://bucket``, name ``key``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import datetime, timezone
from typing import Any

from sanitizer.layout import LINEAGE
from sanitizer.record import RunRecord

log = logging.getLogger("sanitizer")

PRODUCER = "https://github.com/sanitizer/sanitizer"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
NAMESPACE = "sanitizer"
EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")

_FACETS = "https://openlineage.io/spec/facets"
FACET_SCHEMAS = {
    "schema": f"{_FACETS}/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "version": f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
    "inputStatistics": f"{_FACETS}/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet",
    "dataQualityMetrics":
        f"{_FACETS}/1-0-2/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet",
    "dataQualityAssertions":
        f"{_FACETS}/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
    "outputStatistics":
        f"{_FACETS}/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
    "errorMessage": f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "processing_engine": f"{_FACETS}/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet",
    "jobType": f"{_FACETS}/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "documentation": f"{_FACETS}/1-0-1/DocumentationJobFacet.json#/$defs/DocumentationJobFacet",
}
# This project's own run facet (custom facets point at their producer's schema).
SANITIZER_FACET_SCHEMA = f"{PRODUCER}/blob/main/sanitizer/lineage.py#SanitizerRunFacet"
_OBJECT_STORES = ("gs", "s3", "s3a", "s3n", "abfs", "abfss", "wasb", "wasbs", "az", "oss")


def _version() -> str:
    try:
        from sanitizer.version import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - a broken install still gets an event
        return "unknown"


def producer() -> str:
    """The producer URI of every event and facet: this project at this version."""
    return f"{PRODUCER}/tree/v{_version()}"


def _facet(name: str, body: dict[str, Any], schema_url: str | None = None) -> dict[str, Any]:
    return {"_producer": producer(), "_schemaURL": schema_url or FACET_SCHEMAS[name], **body}


def run_uuid(run_id: str | None) -> str:
    """The run's OpenLineage runId: the run id itself when it is a UUID, else a uuid5 derived from it."""
    if not run_id:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(str(run_id)))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PRODUCER}/runs/{run_id}"))


def dataset_id(uri: str) -> tuple[str, str]:
    """(namespace, name) of a file or folder, per OpenLineage's dataset naming conventions."""
    uri = str(uri)
    if "://" not in uri:
        return "file", os.path.abspath(uri)
    scheme, rest = uri.split("://", 1)
    authority, _, path = rest.partition("/")
    if scheme == "file":
        return "file", "/" + path if authority in ("", "localhost") else f"//{authority}/{path}"
    name = path if scheme in _OBJECT_STORES else "/" + path
    return f"{scheme}://{authority}", name.rstrip("/") or "/"


def _join(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel


def _footer_fields(uri: str) -> list[dict[str, str]] | None:
    """Column names and types from a Parquet footer; None when it cannot be read."""
    try:
        import pyarrow.parquet as pq

        if "://" in uri:
            from apache_beam.io.filesystems import FileSystems

            with FileSystems.open(uri) as fh:
                schema = pq.ParquetFile(fh).schema_arrow
        else:
            schema = pq.read_schema(uri)
        return [{"name": f.name, "type": str(f.type)} for f in schema]
    except Exception:
        return None


def _read_manifest(out_dir: str) -> dict | None:
    path = _join(out_dir, "manifest.json")
    try:
        if "://" in path:
            from apache_beam.io.filesystems import FileSystems

            if not FileSystems.exists(path):
                return None
            with FileSystems.open(path) as fh:
                return json.loads(fh.read().decode("utf-8"))
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except Exception:
        return None


def _schema_facet(fields: list[dict[str, str]] | None) -> dict[str, dict]:
    if not fields:
        return {}
    return {"schema": _facet("schema", {"fields": [{"name": f["name"], "type": f["type"]} for f in fields]})}


def _assertions(checks: list[dict], label_column: str | None, severity: str) -> list[dict[str, Any]]:
    out = []
    for c in checks:
        expectation = str(c.get("expectation") or "unknown")
        column = c.get("column")
        props: dict[str, Any] = {"on": c.get("on")}
        if c.get("observed") is not None:
            props["observed"] = c.get("observed")
        if expectation.startswith("sanitizer:class_share") and column is not None:
            props["class"] = column  # the check's "column" is the class; the column tested is the label
            column = label_column
        item: dict[str, Any] = {"assertion": expectation, "success": bool(c.get("success")), "severity": severity,
                                "properties": json.loads(json.dumps(props, default=str))}
        if column is not None:
            item["column"] = str(column)
        out.append(item)
    return out


def _row_level_assertions(validation: dict) -> list[dict[str, Any]]:
    """Row-level expectations that quarantined rows: ``validation:<expectation>:<column>`` -> rows."""
    out = []
    for reason, n in sorted((validation.get("rows_failing_row_level") or {}).items()):
        parts = reason.split(":", 2)
        item: dict[str, Any] = {"assertion": parts[1] if len(parts) > 1 else reason, "success": int(n) == 0,
                                "failures": int(n), "severity": "warn",
                                "properties": {"on": "rows", "action": "quarantine", "reason": reason}}
        if len(parts) > 2 and parts[2]:
            item["column"] = parts[2]
        out.append(item)
    return out


def build_run_event(provenance: RunRecord | dict, out_dir: str, state: str = "COMPLETE", error: str | None = None,
                    *, namespace: str = NAMESPACE, job_name: str | None = None) -> dict[str, Any]:
    """An OpenLineage RunEvent for the run ``provenance`` describes (its output folder is ``out_dir``).

    ``state`` is the eventType (COMPLETE, or FAIL with ``error`` the message). Every provenance key
    is optional, so a partial provenance (a run that failed early) still gives a valid event.
    """
    state = str(state).upper()
    if state not in EVENT_TYPES:
        raise ValueError(f"state must be one of {', '.join(EVENT_TYPES)}, got {state!r}")
    record = RunRecord.coerce(provenance or {})
    out_dir = str(out_dir).rstrip("/") or str(out_dir)
    config = record.config
    validation = record.validation or {}
    outputs = {"clean": record.clean, "quarantine": record.quarantine}
    run_id = record.run_id or None
    label_column = record.columns.label or config.get("label_column")

    # ---- schemas: the published manifest, else the shards' footers
    manifest = _read_manifest(out_dir)
    if manifest is not None and run_id is not None and manifest.get("run_id") != run_id:
        manifest = None  # a manifest from another run
    clean_fields = None
    if manifest and manifest.get("schema"):
        clean_fields = [{"name": f["name"], "type": f["type"]} for f in manifest["schema"]]
    elif outputs.get("clean"):
        clean_fields = _footer_fields(_join(out_dir, outputs["clean"][0].path))
    quarantine_fields = (
        _footer_fields(_join(out_dir, outputs["quarantine"][0].path)) if outputs.get("quarantine") else None
    )
    known = clean_fields or quarantine_fields
    input_fields = [f for f in known if not f["name"].startswith("sanitizer_")] if known else None

    # ---- data-quality assertions from the run's expectation suite
    severity = "error" if validation.get("dataset_failure", "stop") == "stop" else "warn"
    checks = [c for c in (validation.get("checks") or []) if isinstance(c, dict)]
    input_assertions = _assertions([c for c in checks if c.get("on") != "clean output"], label_column, severity)
    input_assertions += _row_level_assertions(validation)
    clean_assertions = _assertions([c for c in checks if c.get("on") == "clean output"], label_column, severity)

    # ---- inputs: one dataset per input file
    inputs = []
    for item in record.inputs:
        ns, name = dataset_id(item.get("uri", ""))
        facets = _schema_facet(input_fields)
        if item.get("sha256"):
            facets["version"] = _facet("version", {"datasetVersion": f"sha256:{item['sha256']}"})
        input_facets: dict[str, Any] = {}
        rows, size = item.get("rows"), item.get("bytes")
        if rows is not None:
            stats = {"rowCount": int(rows), "fileCount": 1}
            if size is not None:
                stats["size"] = int(size)
            input_facets["inputStatistics"] = _facet("inputStatistics", stats)
            metrics = {"rowCount": int(rows), "fileCount": 1, "columnMetrics": {}}
            if size is not None:
                metrics["bytes"] = int(size)
            input_facets["dataQualityMetrics"] = _facet("dataQualityMetrics", metrics)
        if input_assertions:
            input_facets["dataQualityAssertions"] = _facet("dataQualityAssertions", {"assertions": input_assertions})
        dataset: dict[str, Any] = {"namespace": ns, "name": name, "facets": facets}
        if input_facets:
            dataset["inputFacets"] = input_facets
        inputs.append(dataset)

    # ---- outputs: the clean and quarantine folders (none on failure: nothing was published)
    out_datasets = []
    if state != "FAIL":
        for part, fields, assertions in (("clean", clean_fields, clean_assertions),
                                         ("quarantine", quarantine_fields, [])):
            shards = outputs[part]
            ns, name = dataset_id(_join(out_dir, part))
            facets = _schema_facet(fields)
            if run_id:
                facets["version"] = _facet("version", {"datasetVersion": str(run_id)})
            if assertions:
                facets["dataQualityAssertions"] = _facet("dataQualityAssertions", {"assertions": assertions})
            stats = {"rowCount": sum(s.rows for s in shards), "size": sum(s.bytes for s in shards),
                     "fileCount": len(shards)}
            out_datasets.append({"namespace": ns, "name": name, "facets": facets,
                                 "outputFacets": {"outputStatistics": _facet("outputStatistics", stats)}})

    # ---- run and job
    run_facets: dict[str, Any] = {
        "processing_engine": _facet("processing_engine", {
            "name": "Apache Beam",
            "version": str(record.versions.get("apache-beam") or _beam_version()),
            "openlineageAdapterVersion": _version(),
        }),
        "sanitizer": _facet("sanitizer", _sanitizer_facet(record, out_dir, manifest), SANITIZER_FACET_SCHEMA),
    }
    if state == "FAIL":
        run_facets["errorMessage"] = _facet("errorMessage", {
            "message": error or _failure_message(record),
            "programmingLanguage": "PYTHON",
        })
    source = config.get("input") or (record.inputs[0].get("uri") if record.inputs else None) or "input"
    job = {
        "namespace": namespace,
        "name": job_name or f"sanitize.{_basename(source)}",
        "facets": {
            "jobType": _facet("jobType", {"processingType": "BATCH", "integration": "SANITIZER", "jobType": "JOB"}),
            "documentation": _facet("documentation", {
                "description": f"Quarantine poisoned training rows of {source} and publish clean Parquet shards "
                               f"behind {_join(out_dir, 'manifest.json')}",
            }),
        },
    }
    event_time = record.finished_at if state in ("COMPLETE", "FAIL") else None
    return {
        "eventType": state,
        "eventTime": event_time or datetime.now(timezone.utc).isoformat(),
        "producer": producer(),
        "schemaURL": RUN_EVENT_SCHEMA,
        "run": {"runId": run_uuid(run_id), "facets": run_facets},
        "job": job,
        "inputs": inputs,
        "outputs": out_datasets,
    }


def _sanitizer_facet(record: RunRecord, out_dir: str, manifest: dict | None) -> dict[str, Any]:
    counts = record.counts
    body: dict[str, Any] = {
        "runId": record.run_id or None,
        "status": record.status or None,
        "runner": record.runner or None,
        "seed": record.seed,
        "startedAt": record.started_at or None,
        "finishedAt": record.finished_at or None,
        "rowsIn": counts.rows_in,
        "clean": counts.clean,
        "quarantined": counts.quarantined,
        "invalid": counts.invalid,
        "byReason": dict(counts.by_reason),
        "accountingHolds": record.accounting.holds,
        "provenance": _join(out_dir, "provenance.json"),
        "manifest": _join(out_dir, "manifest.json") if manifest is not None else None,
    }
    return {k: v for k, v in body.items() if v is not None}


def _failure_message(record: RunRecord) -> str:
    problems = list(record.accounting.problems)
    failed = record.failed_checks()
    problems += [f"{c.get('expectation')}({c.get('column') or 'table'}) failed on {c.get('on')}" for c in failed[:10]]
    return "; ".join(problems) or "the run failed; nothing was published"


def _basename(path: str) -> str:
    base = str(path).rstrip("/").replace("\\", "/").rsplit("/", 1)[-1] or "input"
    stem, ext = os.path.splitext(base)
    return stem if ext.lower() in (".parquet", ".csv", ".jsonl", ".json", ".ndjson") and stem else base


def _beam_version() -> str:
    try:
        from importlib import metadata

        return metadata.version("apache-beam")
    except Exception:
        return "unknown"


def write_run_event(out_dir: str, event: dict) -> str:
    """Write ``event`` to ``OUT/lineage.json`` (atomically; any Beam filesystem); returns the path."""
    from sanitizer.provenance import write_atomic

    path = _join(str(out_dir).rstrip("/") or str(out_dir), LINEAGE)
    write_atomic(path, event)
    return path


def record_run(provenance: RunRecord | dict, out_dir: str, state: str = "COMPLETE",
               error: str | None = None) -> dict | None:
    """Build and write the run's event; lineage never fails a run (a problem is logged, None returned)."""
    try:
        event = build_run_event(provenance, out_dir, state, error)
        write_run_event(out_dir, event)
        return event
    except Exception as exc:  # lineage is metadata: never let it change a run's outcome
        log.warning("could not write %s/%s: %s: %s", out_dir, LINEAGE, type(exc).__name__, exc)
        return None
