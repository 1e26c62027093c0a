"""OpenLineage: the RunEvents of a sanitize run (START, then COMPLETE or FAIL), and OUT/lineage.json.

An event (https://openlineage.io/spec, RunEvent of spec 2-0-2) names the job, the run (a UUID
derived from the run id, the same in every event of the run), every input file as an input dataset
and the clean and quarantine folders as output datasets, with the standard facets a lineage service
reads:

- run: ``processing_engine`` (Apache Beam and its version), ``parent`` when an orchestrator
  passed its run (``sanitizer.lineage_send``), ``errorMessage`` when the run failed, and
  ``sanitizer`` (this project's own facet: run id, status, runner, seed, counts), plus
  ``sanitizer_drift`` and the baseline as one more input when the run had a baseline
  (``sanitizer.runs.lineage.drift``);
- job: ``jobType`` (BATCH) and ``documentation``;
- inputs: ``schema``, ``version`` (the file's sha256), and as input facets
  ``inputStatistics`` / ``dataQualityMetrics`` (rows, bytes) and ``dataQualityAssertions``
  (the Great Expectations checks of the run, when a suite was used);
- outputs: ``schema``, ``version`` (the run id), ``dataQualityAssertions`` for the checks run
  on the clean output, and the ``outputStatistics`` output facet (rows, bytes, files).

A START event names the datasets (and their schemas as planned) with no statistics; a FAIL event
lists no outputs: a failed run publishes nothing (no manifest). Each part is built with
openlineage-python's typed classes when the ``[lineage]`` extra is installed, else as a dict of
the same JSON shape (``sanitizer.runs.lineage.parts``); sending is ``sanitizer.lineage_send``.

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

from sanitizer.data.layout import LINEAGE
from sanitizer.runs.lineage import drift as lineage_drift
from sanitizer.runs.lineage.parts import FACETS, RUN_EVENT_SCHEMA, Parts, to_json
from sanitizer.runs.record import RunRecord
from sanitizer.runs.provenance import write_atomic
from sanitizer.version import __version__

log = logging.getLogger("sanitizer")

# The producer when the installed package declares no repository URL ([project.urls] in pyproject.toml).
PRODUCER = "https://github.com/sanitizer/sanitizer"
NAMESPACE = "sanitizer"
EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
FACET_SCHEMAS = {kind: schema for kind, (_, _, schema) in FACETS.items()}
_OBJECT_STORES = ("gs", "s3", "s3a", "s3n", "abfs", "abfss", "wasb", "wasbs", "az", "oss")
__all__ = ["RUN_EVENT_SCHEMA", "build_run_event", "make_event", "write_run_event"]


def _version() -> str:
    try:
        return str(__version__)
    except Exception:  # pragma: no cover - a broken install still gets an event
        return "unknown"


def _repository() -> str:
    """The repository URL the installed package declares (Project-URL Repository/Source/Homepage), else PRODUCER."""
    try:
        from importlib import metadata

        urls = dict(u.split(", ", 1) for u in metadata.metadata("sanitizer").get_all("Project-URL") or [] if ", " in u)
        for key in ("Repository", "Source", "Homepage"):
            if urls.get(key, "").startswith("https://"):
                return urls[key].rstrip("/")
    except Exception:  # noqa: BLE001 - not installed as a distribution: the default
        pass
    return PRODUCER


def producer() -> str:
    """The producer URI of every event and facet: this project's repository at this version."""
    return f"{_repository()}/tree/v{_version()}"


def custom_facet_schema() -> str:
    """The schema URL of this project's own run facet (custom facets point at their producer)."""
    return f"{_repository()}/blob/main/sanitizer/runs/lineage/parts.py#SanitizerRunFacet"


def drift_facet_schema() -> str:
    """The schema URL of the drift run facet (``sanitizer.runs.lineage.drift``)."""
    return f"{_repository()}/blob/main/sanitizer/runs/lineage/drift.py#SanitizerDriftRunFacet"


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
        return schema_fields(schema)
    except Exception:
        return None


def schema_fields(schema) -> list[dict[str, str]]:
    """[{name, type}] of a pyarrow schema."""
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def read_json(path: str) -> dict | None:
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


def _schema_facet(parts: Parts, fields: list[dict[str, str]] | None) -> dict[str, Any]:
    if not fields:
        return {}
    return {"schema": parts.facet("schema", fields=[parts.nested("field", name=f["name"], type=f["type"])
                                                    for f in fields])}


def _assertions(parts: Parts, checks: list[dict], label_column: str | None, severity: str) -> list:
    """Data-set checks as the spec's assertions: assertion, success, column (+ severity, actual, params)."""
    out = []
    for c in checks:
        column = c.get("column")
        params: dict[str, Any] = {"on": str(c.get("on"))}
        if str(c.get("expectation") or "").startswith("sanitizer:class_share") and column is not None:
            params["class"] = str(column)  # the check's "column" is the class; the column tested is the label
            column = label_column
        observed = c.get("observed")
        out.append(parts.nested(
            "assertion", assertion=str(c.get("expectation") or "unknown"), success=bool(c.get("success")),
            column=None if column is None else str(column), severity=severity,
            actual=None if observed is None else json.dumps(observed, default=str), params=params))
    return out


def _row_level_assertions(parts: Parts, validation: dict) -> list:
    """Row-level expectations that quarantined rows (``validation:<expectation>:<column>`` -> rows failing)."""
    out = []
    for reason, n in sorted((validation.get("rows_failing_row_level") or {}).items()):
        bits = reason.split(":", 2)
        out.append(parts.nested(
            "assertion", assertion=bits[1] if len(bits) > 1 else reason, success=int(n) == 0,
            column=bits[2] if len(bits) > 2 and bits[2] else None, severity="warn", actual=str(int(n)),
            description="rows failing it were quarantined, not published",
            params={"on": "rows", "action": "quarantine", "reason": reason}))
    return out


def build_run_event(provenance: RunRecord | dict, out_dir: str, state: str = "COMPLETE", error: str | None = None,
                    *, typed: bool | None = None, **context: Any) -> dict[str, Any]:
    """The JSON form (a dict) of :func:`make_event`; ``typed``: build it with the client's classes
    (default: when openlineage-python is installed), else as plain dicts of the same shape."""
    parts = Parts(producer(), typed, custom_facet_schema())
    return to_json(make_event(parts, provenance, out_dir, state, error, **context))


def make_event(parts: Parts, provenance: RunRecord | dict, out_dir: str, state: str = "COMPLETE",
               error: str | None = None, *, namespace: str | None = None, job_name: str | None = None,
               parent: dict | None = None, planned: dict | None = None):
    """An OpenLineage RunEvent for the run ``provenance`` describes (its output folder is ``out_dir``).

    ``state`` is the eventType (START, COMPLETE, or FAIL with ``error`` the message). Every provenance
    key is optional, so a partial provenance (a run that failed early) still gives a valid event.
    ``parent``: the orchestrator's run ({namespace, name, runId, root?}); ``planned``: for START, the
    schemas planning knows ({"input": fields, "clean": fields}).
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
    started = state == "START"

    # ---- schemas: as planned (START), else the published manifest, else the shards' footers
    manifest = None if started else read_json(_join(out_dir, "manifest.json"))
    if manifest is not None and run_id is not None and manifest.get("run_id") != run_id:
        manifest = None  # a manifest from another run
    clean_fields = quarantine_fields = input_fields = None
    if started:
        clean_fields, input_fields = (planned or {}).get("clean"), (planned or {}).get("input")
    else:
        if manifest and manifest.get("schema"):
            clean_fields = [{"name": f["name"], "type": f["type"]} for f in manifest["schema"]]
        elif outputs.get("clean"):
            clean_fields = _footer_fields(_join(out_dir, outputs["clean"][0].path))
        if outputs.get("quarantine"):
            quarantine_fields = _footer_fields(_join(out_dir, outputs["quarantine"][0].path))
        known = clean_fields or quarantine_fields
        input_fields = [f for f in known if not f["name"].startswith("sanitizer_")] if known else None

    # ---- data-quality assertions from the run's expectation suite
    severity = "error" if validation.get("dataset_failure", "stop") == "stop" else "warn"
    checks = [c for c in (validation.get("checks") or []) if isinstance(c, dict)]
    input_assertions = _assertions(parts, [c for c in checks if c.get("on") != "clean output"], label_column,
                                   severity) + _row_level_assertions(parts, validation)
    clean_assertions = _assertions(parts, [c for c in checks if c.get("on") == "clean output"], label_column,
                                   severity)

    # ---- inputs: one dataset per input file
    inputs = []
    for item in record.inputs:
        ns, name = dataset_id(item.get("uri", ""))
        facets = _schema_facet(parts, input_fields)
        if item.get("sha256"):
            facets["version"] = parts.facet("version", datasetVersion=f"sha256:{item['sha256']}")
        input_facets: dict[str, Any] = {}
        rows, size = item.get("rows"), item.get("bytes")
        if rows is not None and not started:
            size = None if size is None else int(size)
            input_facets["inputStatistics"] = parts.facet("inputStatistics", rowCount=int(rows), fileCount=1,
                                                          size=size)
            input_facets["dataQualityMetrics"] = parts.facet("dataQualityMetrics", rowCount=int(rows), fileCount=1,
                                                             bytes=size, columnMetrics={})
        if input_assertions:
            input_facets["dataQualityAssertions"] = parts.facet("dataQualityAssertions", assertions=input_assertions)
        inputs.append(parts.dataset("input", ns, name, facets, input_facets))
    inputs += lineage_drift.baseline_inputs(parts, record, dataset_id)

    # ---- outputs: the clean and quarantine folders (none on failure: nothing was published)
    out_datasets = []
    if state != "FAIL":
        for part, fields, assertions in (("clean", clean_fields, clean_assertions),
                                         ("quarantine", quarantine_fields, [])):
            shards = outputs[part]
            ns, name = dataset_id(_join(out_dir, part))
            facets = _schema_facet(parts, fields)
            output_facets: dict[str, Any] = {}
            if not started:
                if run_id:
                    facets["version"] = parts.facet("version", datasetVersion=str(run_id))
                if assertions:
                    facets["dataQualityAssertions"] = parts.facet("dataQualityAssertions", assertions=assertions)
                output_facets["outputStatistics"] = parts.facet(
                    "outputStatistics", rowCount=sum(s.rows for s in shards), size=sum(s.bytes for s in shards),
                    fileCount=len(shards))
            out_datasets.append(parts.dataset("output", ns, name, facets, output_facets))

    # ---- run and job
    run_facets: dict[str, Any] = {
        "processing_engine": parts.facet(
            "processing_engine", name="Apache Beam", openlineageAdapterVersion=_version(),
            version=str(record.versions.get("apache-beam") or _beam_version())),
        "sanitizer": parts.custom_run_facet(**_sanitizer_facet(record, out_dir, manifest, state)),
    }
    run_facets.update(lineage_drift.run_facets(parts, record, drift_facet_schema()))
    if parent:
        run_facets["parent"] = _parent_facet(parts, parent)
    if state == "FAIL":
        run_facets["errorMessage"] = parts.facet("errorMessage", message=error or _failure_message(record),
                                                 programmingLanguage="PYTHON")
    source = config.get("input") or (record.inputs[0].get("uri") if record.inputs else None) or "input"
    job_facets = {
        "jobType": parts.facet("jobType", processingType="BATCH", integration="SANITIZER", jobType="JOB"),
        "documentation": parts.facet("documentation", description=(
            f"Quarantine poisoned training rows of {source} and publish clean Parquet shards "
            f"behind {_join(out_dir, 'manifest.json')}")),
    }
    event_time = record.started_at if started else record.finished_at if state in ("COMPLETE", "FAIL") else None
    return parts.run_event(state, event_time or datetime.now(timezone.utc).isoformat(), run_uuid(run_id),
                           run_facets, namespace or NAMESPACE, job_name or default_job_name(source),
                           job_facets, inputs, out_datasets)


def default_job_name(source: str) -> str:
    """``sanitize.<input's base name>``."""
    return f"sanitize.{_basename(source)}"


def _parent_facet(parts: Parts, parent: dict):
    root = parent.get("root")
    return parts.facet(
        "parent",
        run=parts.nested("parent_run", runId=parent["runId"]),
        job=parts.nested("parent_job", namespace=parent["namespace"], name=parent["name"]),
        root=None if not root else parts.nested(
            "root", run=parts.nested("root_run", runId=root["runId"]),
            job=parts.nested("root_job", namespace=root["namespace"], name=root["name"])),
    )


def _sanitizer_facet(record: RunRecord, out_dir: str, manifest: dict | None, state: str) -> dict[str, Any]:
    if state == "START":  # nothing is counted yet
        return {k: v for k, v in {"runId": record.run_id or None, "status": "started", "seed": record.seed,
                                  "runner": record.runner or None, "startedAt": record.started_at or None}.items()
                if v is not None}
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
    path = _join(str(out_dir).rstrip("/") or str(out_dir), LINEAGE)
    write_atomic(path, event)
    return path
