"""Data-set checks at publication through one Great Expectations Checkpoint.

Every data-set check that runs at publication is a real Great Expectations expectation, run by one
``gx.Checkpoint``:

* **input columns**: the table-shape expectations (``validation.SHAPE``: column count, column set or
  order, a column's existence or type) on a zero-row frame with the input's real columns, in order, with
  the types every batch is read with;
* **clean output**: the suite's other expectations (not row counts) on the clean shards' suite columns
  (a date range checks a copy of its column read as dates: ``sanitizer.validation.dates``);
* **input totals: row count**: the suite's ``expect_table_row_count_*`` expectations, on a one-column
  frame with one row per row read (an int8 column: 1 MB per million rows). A suite describes the data it
  was written for (``sanitize profile`` infers it from trusted input), so row counts are checked on the
  rows read, not on what is left after quarantine;
* **input totals / clean totals: class shares**: ``meta.sanitizer.class_shares`` bounds, which Great
  Expectations has no expectation for, as ``expect_column_values_to_be_between`` on a one-row frame whose
  column ``class_share:<class>`` holds that class's share of the rows (computed by sanitizer from the
  run's per-class counts).

Each frame is written as Parquet to a local temporary folder and read by a pandas *filesystem* data
source, one path batch definition each, so one Checkpoint runs every validation definition without
batch parameters.

No Data Docs are written. Great Expectations' Data Docs renderer prints data values ("Sampled Unexpected
Values", observed values) and names into HTML without escaping them, and its pages load scripts and
styles from public CDNs, so a restrictive Content-Security-Policy would break them: a hostile value in
the data would become stored script in the output folder. The results are kept as Great Expectations
result JSON in ``OUT/validation/`` and shown, escaped, in ``report.html`` (which carries a CSP).
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from sanitizer.validation.dates import as_dates, temporal_columns, with_date_views, without_date_views
from sanitizer.validation.suite import ROW_COUNT, SHAPE, _gx, _quiet_context, class_share_severity

log = logging.getLogger("sanitizer")
CHECKPOINT = "sanitizer publication"
SHARE = "class_share:"


def _gx_expectation(e: dict):
    from great_expectations.expectations.registry import get_expectation_impl

    kwargs = dict(e["kwargs"])
    return get_expectation_impl(e["type"])(**kwargs, meta=e.get("meta") or None,
                                            severity=e.get("severity") or "critical")


def _share_expectations(suite, side: str, class_rows: dict[str, int]) -> list[dict]:
    shares = ((suite.meta.get("sanitizer") or {}).get("class_shares")) or {}
    total = max(sum(class_rows.values()), 1)
    return [
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": f"{SHARE}{cls}", "min_value": lo, "max_value": hi},
         "meta": {"sanitizer": {"check": "class_share_between", "class": str(cls), "on": side,
                                "share": round(class_rows.get(str(cls), 0) / total, 6)}},
         "severity": class_share_severity(suite)}
        for cls, (lo, hi) in sorted(shares.items())
    ]


def _frames(suite, clean_frame: pd.DataFrame, totals: dict[str, tuple[int, dict[str, int]]],
            input_frame: pd.DataFrame | None = None):
    """(definition name, frame, expectations) for every validation definition the Checkpoint runs."""
    out = []
    shape = [e for e in suite.expectations if e["type"] in SHAPE]
    if shape and input_frame is not None:
        out.append(("input columns", input_frame, shape))
    others = [e for e in suite.expectations if e["type"] not in ROW_COUNT and e["type"] not in SHAPE]
    if others:
        temporal = temporal_columns(others)
        out.append(("clean output", as_dates(clean_frame, temporal)[0], with_date_views(others, temporal)))
    counts = [e for e in suite.dataset_level if e["type"] in ROW_COUNT]
    for side, (rows, class_rows) in totals.items():
        if counts and side == "input totals":
            out.append((f"{side}: row count", pd.DataFrame({"row": np.zeros(rows, dtype=np.int8)}), counts))
        shares = _share_expectations(suite, side, class_rows)
        if shares:
            frame = pd.DataFrame({e["kwargs"]["column"]: [e["meta"]["sanitizer"]["share"]] for e in shares})
            out.append((f"{side}: class shares", frame, shares))
    return out


def input_frame(schema) -> pd.DataFrame:
    """A zero-row frame with the input's columns, in order, typed as every batch is read (an Arrow schema)."""
    return schema.empty_table().to_pandas()


def run_checkpoint(suite, clean_frame: pd.DataFrame, totals: dict[str, tuple[int, dict[str, int]]],
                   run_name: str, input_columns: pd.DataFrame | None = None) -> dict[str, Any]:
    """Run the publication checks through one Checkpoint.

    ``totals``: side ("input totals", "clean output") -> (rows, rows per class); ``input_columns``: the
    frame the table-shape expectations see (``input_frame``). Returns {"results": {definition name: result
    JSON}, "checkpoint": CheckpointResult JSON or None}."""
    gx = _gx()
    from great_expectations.core.run_identifier import RunIdentifier

    with tempfile.TemporaryDirectory(prefix="sanitizer-gx-") as tmp:
        context = _quiet_context()
        source = context.data_sources.add_pandas_filesystem("sanitizer", base_directory=tmp)
        definitions = []
        sides = {}
        for name, frame, expectations in _frames(suite, clean_frame, totals, input_columns):
            slug = _slug(name)
            sides[f"{suite.name}.{slug}"] = name
            path = f"{slug}.parquet"
            frame.to_parquet(os.path.join(tmp, path), index=False)
            batch = source.add_parquet_asset(slug).add_batch_definition_path(slug, path)
            gx_suite = gx.ExpectationSuite(name=f"{suite.name}.{slug}", meta={"sanitizer_checks_on": name})
            for e in expectations:
                gx_suite.add_expectation(_gx_expectation(e))
            definitions.append(context.validation_definitions.add(
                gx.ValidationDefinition(name=slug, data=batch, suite=context.suites.add(gx_suite))))
        if not definitions:
            return {"results": {}, "checkpoint": None}
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=CHECKPOINT, validation_definitions=definitions, actions=[],
            result_format={"result_format": "SUMMARY"},
        ))
        result = checkpoint.run(run_id=RunIdentifier(run_name=run_name))
        results = {sides[vr.suite_name]: without_date_views(vr.to_json_dict()) for vr in result.run_results.values()}
        described = without_date_views(
            {"name": checkpoint.name, "run_id": result.run_id.to_json_dict(), **result.describe_dict()})
        return {"results": results, "checkpoint": described}


def _slug(name: str) -> str:
    return name.replace(": ", ".").replace(" ", "_")
