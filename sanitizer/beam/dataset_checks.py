"""Data-set-level expectations at publication: totals, the sample's result, and the clean output."""

from __future__ import annotations

import os
from typing import Any

from sanitizer import provenance as prov
from sanitizer.config import Config
from sanitizer.plan import Plan
from sanitizer.record import Counts


def finish_validation(plan: Plan, config: Config, out: str, sample_part: dict | None, stats: Counts,
                      clean: list[dict]) -> tuple[dict[str, Any], list[dict]]:
    """Data-set checks on the totals, the sample and the clean output; results to OUT/validation/.

    ``sample_part`` is what the ValidateSample stage produced ({"result", "summary"}).
    Returns (the validation record for provenance, the failed checks)."""
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    from sanitizer import validation as v

    suite = plan.suite
    sample_part = sample_part or {"result": {}, "summary": []}
    rows, held = stats.class_rows, stats.class_quarantined
    clean_rows = sum(s["rows"] for s in clean)
    checks = list(sample_part.get("summary", []))
    checks += v.check_totals(suite, stats.rows_in, rows, "input totals")
    checks += v.check_totals(suite, clean_rows, {k: n - held.get(k, 0) for k, n in rows.items()}, "clean output")

    columns = [c for c in plan.output_schema.names if c in suite.columns()]
    tables = []
    for shard in clean:
        with FileSystems.open(shard["path"]) as fh:
            tables.append(pq.ParquetFile(fh).read(columns=columns))  # not read_table: see fs.read_parquet
    clean_frame = v.to_pandas(_concat(tables, plan, columns), set(columns))
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
    row_failures = stats.rows_failing("validation:")
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


def _concat(tables, plan: Plan, columns):
    import pyarrow as pa

    if tables:
        return pa.concat_tables(tables)
    return pa.schema([plan.output_schema.field(c) for c in columns]).empty_table()
