"""OpenLineage for a run given a trusted baseline (``--baseline RUN`` or ``--baseline-data PATH``).

* The baseline is one more input dataset: the detectors fitted on it. A baseline run is named as its
  clean folder with the run id as its version, the very dataset that run's own events list as an
  output, so a lineage service links the runs of a continuous-training chain; baseline data is named by
  its path.
* The run facet ``sanitizer_drift`` carries the drift between the baseline and the new data: the verdict,
  where the baseline came from, every compared column's statistics (value, threshold, alarm), the
  alarms and the columns not compared. The full record, with the statistics' null thresholds and
  p-values and the drifted columns' histograms, is provenance.json's ``drift``.

A run without a baseline gets neither.
"""

from __future__ import annotations

from typing import Any

from sanitizer.runs.record import RunRecord

FACET = "sanitizer_drift"


def _join(root: str, rel: str) -> str:
    return str(root).rstrip("/") + "/" + rel


def baseline_inputs(parts, record: RunRecord, dataset_id) -> list:
    """The baseline as an input dataset (a list of none or one); ``dataset_id``: uri -> (namespace, name)."""
    baseline = record.extra.get("baseline")
    if not isinstance(baseline, dict) or not baseline.get("path"):
        return []
    is_run = baseline.get("kind") == "run"
    ns, name = dataset_id(_join(baseline["path"], "clean") if is_run else str(baseline["path"]))
    facets: dict[str, Any] = {}
    if is_run and baseline.get("run_id"):
        facets["version"] = parts.facet("version", datasetVersion=str(baseline["run_id"]))
    side: dict[str, Any] = {}
    if baseline.get("rows") is not None:
        side["inputStatistics"] = parts.facet("inputStatistics", rowCount=int(baseline["rows"]),
                                              fileCount=baseline.get("files"))
    return [parts.dataset("input", ns, name, facets, side)]


def _baseline_body(baseline: dict) -> dict[str, Any]:
    body = {"kind": baseline.get("kind"), "path": baseline.get("path"), "runId": baseline.get("run_id"),
            "manifestSha256": baseline.get("manifest_sha256"), "rows": baseline.get("rows")}
    return {k: v for k, v in body.items() if v is not None}


def run_facets(parts, record: RunRecord, schema_url: str) -> dict[str, Any]:
    """``{"sanitizer_drift": facet}`` when the run compared the new data with a baseline, else ``{}``."""
    drift = record.extra.get("drift")
    if not isinstance(drift, dict):
        return {}
    baseline = record.extra.get("baseline") if isinstance(record.extra.get("baseline"), dict) else {}
    columns = {
        name: {"kind": c.get("kind"), "severity": c.get("severity"), "alarm": bool(c.get("alarm")),
               "statistics": {stat: {"value": e.get("value"), "threshold": e.get("threshold"),
                                     "alarm": bool(e.get("alarm"))}
                              for stat, e in (c.get("statistics") or {}).items()}}
        for name, c in (drift.get("columns") or {}).items() if isinstance(c, dict)
    }
    body = {
        "verdict": drift.get("verdict"),
        "baseline": _baseline_body(baseline) or {"path": drift.get("baseline")},
        "baselineRows": drift.get("baseline_rows"),
        "newRows": drift.get("new_rows"),
        "alpha": drift.get("alpha"),
        "tests": drift.get("tests"),
        "columns": columns,
        "alarms": list(drift.get("alarms") or []),
        "notCompared": dict(drift.get("not_compared") or {}),
    }
    return {FACET: parts.custom_run_facet(schema=schema_url, **body)}
