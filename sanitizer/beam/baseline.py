"""The baseline (``--baseline RUN`` or ``--baseline-data PATH``): vetted data the detectors fit on.

Without a baseline every run fits its detectors on a sample of its own data, so a heavily poisoned batch
shapes the reference meant to expose it. With one, the sample is drawn from the baseline instead - a
published run's verified clean shards (checked as the training loader checks them: a modified, missing or
added shard is refused) or data the user trusts - and the new data is scored against it. The new records
never enter the reference, so nothing of theirs is cross-fitted.

The baseline is read as the new data's types: it must hold every column the detectors read and the label;
other columns are ignored. Its records get ids of their own (``baseline/<file>:<row>``) so that no baseline
record shares a key with a new one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from sanitizer.beam.plan import Plan, folder_of
from sanitizer.errors import ConfigError, InputError
from sanitizer.io.discover import survey
from sanitizer.io.input_schema import unified_schema
from sanitizer.io.readers import reader_for

PREFIX = "baseline/"


@dataclass(frozen=True)
class Baseline:
    """Where the baseline comes from and the plan that reads it."""

    plan: Plan
    record: dict[str, Any]  # provenance's ``baseline``: kind, path, run_id, manifest_sha256, files, rows


def _absolute(path: str) -> str:
    """A local path made absolute (a later run, in another folder, finds the same baseline); a URI as it is."""
    return path if "://" in path else os.path.abspath(path)


def _verified_run(config) -> tuple[list[str], dict[str, Any]]:
    from sanitizer.training.manifest import load_manifest
    from sanitizer.training.shards import ManifestError

    source = config.baseline.run
    try:
        clean = load_manifest(source, config.baseline.run_sha256)
    except ManifestError as exc:
        raise InputError(f"baseline {source!r} cannot be used: {exc}") from None
    if clean.label_column and clean.label_column != config.label_column:
        raise ConfigError(f"baseline run {clean.run_id} labels its rows with {clean.label_column!r}, this run with "
                          f"{config.label_column!r}: a baseline must label the same thing; give --label-column "
                          f"{clean.label_column} or another baseline")
    if not clean.uris:
        raise InputError(f"baseline run {clean.run_id} at {clean.out_dir} published no clean rows to fit on")
    return clean.uris, {"kind": "run", "path": _absolute(clean.out_dir), "run_id": clean.run_id,
                        "manifest": _absolute(clean.manifest_path), "manifest_sha256": clean.manifest_sha256,
                        "rows": clean.rows}


def baseline_plan(config, plan: Plan) -> Baseline | None:
    """The baseline's plan (its files read as ``plan``'s types), or None when the run has no baseline.
    ConfigError / InputError when the baseline cannot serve: unverifiable, unreadable, or lacking a column."""
    if not config.baseline.source:
        return None
    if config.baseline.run:
        paths, record = _verified_run(config)
        files = []
        for path in paths:
            files.extend(survey(path, "parquet").files)
    else:
        found = survey(config.baseline.data, "auto", config.ignore)
        files = list(found.files)
        record = {"kind": "data", "path": _absolute(config.baseline.data), "run_id": None, "manifest_sha256": None}
        if not files:
            raise InputError(f"baseline data {config.baseline.data!r} matched no readable files")
    schema = unified_schema(files)
    names = set(schema.names) if schema is not None else set()
    id_column = plan.id_column if plan.id_column and plan.id_column in names else None
    missing = [c for c in replace(plan, id_column=id_column).read_columns() if c not in names]
    if missing:
        raise ConfigError(
            f"baseline {config.baseline.source!r} lacks the column(s) {missing} that this run's detectors read; "
            "a baseline must hold the new data's feature columns and its label")
    fields = [plan.schema.field(c) for c in plan.schema.names if c in names]
    files = [replace(f, relpath=PREFIX + f.relpath) for f in files]  # keys of their own, never a new record's
    splits, file_rows = reader_for(files[0].format).splits(files, target_rows=max(plan.batch_rows * 4, 262_144))
    media_base = folder_of(files[0].path) if plan.media_base else None
    record["files"] = len(files)
    record.setdefault("rows", sum(file_rows.values()) if file_rows else None)
    return Baseline(
        plan=replace(plan, files=tuple(files), splits=tuple(splits), file_rows=file_rows, schema=pa.schema(fields),
                     id_column=id_column, warnings=(), decisions=None, skipped_inputs=(), media_base=media_base),
        record=record)
