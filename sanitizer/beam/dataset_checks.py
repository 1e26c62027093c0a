"""Data-set-level expectations at publication: totals, the sample's result, and the clean output."""

from __future__ import annotations

import os
from typing import Any

from sanitizer.runs import provenance as prov
from sanitizer.settings.config import Config
from sanitizer.beam.plan import Plan
from sanitizer.runs.record import Counts
from sanitizer.validation import suite as v
from sanitizer.validation.checkpoint import input_frame, run_checkpoint


def finish_validation(plan: Plan, config: Config, out: str, sample_part: dict | None, stats: Counts,
                      clean: list[dict], run_id: str = "") -> tuple[dict[str, Any], list[dict]]:
    """Data-set checks on the totals, the sample and the clean output; results to OUT/validation/.

    ``sample_part`` is what the ValidateSample stage produced ({"result", "summary"}).
    The checks run through one Great Expectations Checkpoint (see sanitizer.validation.checkpoint): the
    table-shape expectations on the input's real columns (``plan.schema``), row counts on the rows read.
    Returns (the validation record for provenance, the failed checks that withhold publication)."""
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    suite = plan.suite
    sample_part = sample_part or {"result": {}, "summary": []}
    rows, held = stats.class_rows, stats.class_quarantined
    clean_rows = sum(s["rows"] for s in clean)
    checks = list(sample_part.get("summary", []))

    columns = [c for c in plan.output_schema.names if c in suite.columns()]
    tables = []
    for shard in clean:
        with FileSystems.open(shard["path"]) as fh:
            tables.append(pq.ParquetFile(fh).read(columns=columns))  # not read_table: see fs.read_parquet
    clean_frame = v.to_pandas(_concat(tables, plan, columns), set(columns))

    directory = f"{out}/validation"
    if "://" not in directory:
        os.makedirs(directory, exist_ok=True)
    totals = {"input totals": (stats.rows_in, dict(rows)),
              "clean output": (clean_rows, {k: n - held.get(k, 0) for k, n in rows.items()})}
    ran = run_checkpoint(suite, clean_frame, totals, f"sanitize {run_id}", input_frame(plan.schema))
    results = {"input_sample": sample_part.get("result", {})}
    for name, result in ran["results"].items():  # the totals checks first, as the summary always listed them
        if name != "clean output":
            checks += v.summarise(result, name.split(":")[0])
    checks += v.summarise(ran["results"].get("clean output", {}), "clean output")
    results["clean_output"] = ran["results"].get("clean output", {"success": True, "results": []})
    if "input columns" in ran["results"]:
        results["input_columns"] = ran["results"]["input columns"]
    results["totals"] = {k: r for k, r in ran["results"].items() if k not in ("clean output", "input columns")}
    # Severity: a failed critical check withholds publication under dataset_failure=stop; warning and info
    # failures are recorded and shown, and the run publishes. dataset_failure=warn downgrades critical to warning.
    mode = config.validation.dataset_failure
    for c in checks:
        c.setdefault("severity", "critical")
        c["blocking"] = not c["success"] and c["severity"] == "critical" and mode == "stop"
    failed = [c for c in checks if c["blocking"]]
    for name, result in results.items():
        prov.write_atomic(f"{directory}/{name}.json", result)
    if ran["checkpoint"] is not None:
        prov.write_atomic(f"{directory}/checkpoint_result.json", ran["checkpoint"])
    prov.write_atomic(f"{directory}/summary.json", checks)

    row_failures = stats.rows_failing("validation:")
    info = {
        "suite": suite.describe(),
        "dataset_failure": mode,
        "row_level_expectations": len(suite.row_level),
        "rows_failing_row_level": row_failures,
        "checks": checks,
        "success": not any(not c["success"] for c in checks),
        "failed_by_severity": {s: sum(1 for c in checks if not c["success"] and c["severity"] == s)
                               for s in v.SEVERITIES},
        "checkpoint": ran["checkpoint"] and {"name": ran["checkpoint"].get("name"),
                                             "success": ran["checkpoint"].get("success")},
        "blocked_publication": bool(failed),
    }
    return info, failed


def _concat(tables, plan: Plan, columns):
    import pyarrow as pa

    if tables:
        return pa.concat_tables(tables)
    return pa.schema([plan.output_schema.field(c) for c in columns]).empty_table()
