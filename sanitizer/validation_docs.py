"""Data-set checks at publication through one Great Expectations Checkpoint, and its Data Docs.

Every data-set check that runs at publication is a real Great Expectations expectation, run by one
``gx.Checkpoint`` whose ``UpdateDataDocsAction`` builds the Data Docs site:

* **clean output**: the suite's expectations other than row counts, on the clean shards' suite columns;
* **input totals / clean totals: row count**: the suite's ``expect_table_row_count_*`` expectations, on a
  one-column frame with one row per row of the run (an int8 column: 1 MB per million rows);
* **input totals / clean totals: class shares**: ``meta.sanitizer.class_shares`` bounds, which Great
  Expectations has no expectation for, as ``expect_column_values_to_be_between`` on a one-row frame whose
  column ``class_share:<class>`` holds that class's share of the rows (computed by sanitizer from the
  run's per-class counts).

Each frame is written as Parquet to a local temporary folder and read by a pandas *filesystem* data
source, one path batch definition each, so one Checkpoint runs every validation definition without
batch parameters. The sample's result (computed in the pipeline's ValidateSample stage) is stored in the
same context's validation results store, so the Data Docs index lists it too.

Data Docs are rendered locally and copied through ``apache_beam.io.filesystems`` to
``OUT/validation/data_docs/``, so they land on any filesystem Beam can write (gs://, s3://, ...) without
the GCS / S3 store backends (google-cloud-storage, boto3) on the worker.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("sanitizer")
CHECKPOINT = "sanitizer publication"
SITE = "sanitizer"
SHARE = "class_share:"


def _gx_expectation(e: dict):
    from great_expectations.expectations.registry import get_expectation_impl

    kwargs = dict(e["kwargs"])
    return get_expectation_impl(e["type"])(**kwargs, meta=e.get("meta") or None,
                                            severity=e.get("severity") or "critical")


def _share_expectations(suite, side: str, class_rows: dict[str, int]) -> list[dict]:
    from sanitizer.validation import class_share_severity

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


def _frames(suite, clean_frame: pd.DataFrame, totals: dict[str, tuple[int, dict[str, int]]]):
    """(definition name, frame, expectations) for every validation definition the Checkpoint runs."""
    from sanitizer.validation import ROW_COUNT

    out = []
    others = [e for e in suite.expectations if e["type"] not in ROW_COUNT]
    if others:
        out.append(("clean output", clean_frame, others))
    counts = [e for e in suite.dataset_level if e["type"] in ROW_COUNT]
    for side, (rows, class_rows) in totals.items():
        if counts:
            out.append((f"{side}: row count", pd.DataFrame({"row": np.zeros(rows, dtype=np.int8)}), counts))
        shares = _share_expectations(suite, side, class_rows)
        if shares:
            frame = pd.DataFrame({e["kwargs"]["column"]: [e["meta"]["sanitizer"]["share"]] for e in shares})
            out.append((f"{side}: class shares", frame, shares))
    return out


def run_checkpoint(suite, clean_frame: pd.DataFrame, totals: dict[str, tuple[int, dict[str, int]]],
                   sample_result: dict | None, directory: str, run_name: str) -> dict[str, Any]:
    """Run the publication checks through one Checkpoint; Data Docs and its result go to ``directory``.

    ``totals``: side ("input totals", "clean output") -> (rows, rows per class).
    Returns {"results": {definition name: result JSON}, "checkpoint": CheckpointResult JSON,
    "data_docs": the copied index path or None}."""
    from sanitizer.validation import _gx, _quiet_context

    gx = _gx()
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    with tempfile.TemporaryDirectory(prefix="sanitizer-gx-") as tmp:
        context = _quiet_context()
        docs_dir = os.path.join(tmp, "data_docs")
        context.add_data_docs_site(site_name=SITE, site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        sample_key = None
        if sample_result and sample_result.get("results"):
            sample_key = _store_result(context, sample_result, "input sample", run_name)
        source = context.data_sources.add_pandas_filesystem("sanitizer", base_directory=tmp)
        definitions = []
        sides = {}
        for i, (name, frame, expectations) in enumerate(_frames(suite, clean_frame, totals)):
            slug = _slug(name)  # names become Data Docs paths (and object names on gs:// / s3://)
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
            return {"results": {}, "checkpoint": None, "data_docs": None}
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=CHECKPOINT, validation_definitions=definitions,
            actions=[UpdateDataDocsAction(name="update data docs", site_names=[SITE])],
            result_format={"result_format": "SUMMARY"},
        ))
        result = checkpoint.run(run_id=RunIdentifier(run_name=run_name))
        if sample_key is not None:  # run in the pipeline (ValidateSample), not by this Checkpoint: render it too
            context.build_data_docs(site_names=[SITE], resource_identifiers=[sample_key])
        results = {sides[vr.suite_name]: vr.to_json_dict() for vr in result.run_results.values()}
        docs = _copy_tree(docs_dir, f"{directory}/data_docs")
        described = {"name": checkpoint.name, "run_id": result.run_id.to_json_dict(), **result.describe_dict()}
        return {"results": results, "checkpoint": described, "data_docs": docs}


def _slug(name: str) -> str:
    return name.replace(": ", ".").replace(" ", "_")


def _store_result(context, result: dict, name: str, run_name: str):
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    vr = ExpectationSuiteValidationResult(**{k: v for k, v in result.items() if k != "id"})
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=f"{vr.suite_name}.{_slug(name)}"),
        run_id=run_name, batch_identifier=_slug(name),
    )
    context.validation_results_store.set(key, vr)
    return key


def _copy_tree(local: str, target: str) -> str | None:
    """Copy a rendered Data Docs folder to ``target`` through Beam's filesystems; returns the index path."""
    from apache_beam.io.filesystems import FileSystems

    if not os.path.exists(os.path.join(local, "index.html")):
        return None
    try:
        for root, _, files in os.walk(local):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), local).replace(os.sep, "/")
                dest = f"{target.rstrip('/')}/{rel}"
                if "://" not in dest:
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(os.path.join(root, name), "rb") as src, FileSystems.create(dest) as out:
                    out.write(src.read())
    except Exception as exc:  # Data Docs are a convenience; the JSON results are the record
        log.warning("could not copy Data Docs to %s (%s); the JSON results are beside it", target, exc)
        return None
    return f"{target.rstrip('/')}/index.html"
